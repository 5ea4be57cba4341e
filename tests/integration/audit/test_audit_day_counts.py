"""audit_day_counts (migration 6): the audit list's total with action, `from` and `to` comes from
whole UTC days of counts plus the partial days at its ends, and equals a plain count for any range."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg

from server.audit.service import ACTIONS

PATH = "/api/v1/audit-logs"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
SOME = ACTIONS[:4]


async def _rows(database_url: str, count: int, seed: int) -> None:
    """`count` rows over ten days, from several sessions at once (the counts' slots)."""
    rng = random.Random(seed)

    async def one_session(share: int) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.executemany(
                "INSERT INTO audit_logs (occurred_at, actor_type, action, resource_type, resource_id) "
                "VALUES ($1, 'system', $2, 'purchase', gen_random_uuid())",
                [(T0 + timedelta(seconds=rng.randrange(10 * 86400)), rng.choice(SOME)) for _ in range(count // share)],
            )
        finally:
            await conn.close()

    await asyncio.gather(*(one_session(4) for _ in range(4)))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_totals_from_day_counts_equal_a_plain_count(client, conn, admin, database_url):
    await _rows(database_url, 800, seed=7)
    assert await conn.fetchval("SELECT count(DISTINCT slot) FROM audit_day_counts") > 1
    assert await conn.fetchval("SELECT sum(n) FROM audit_day_counts") == await conn.fetchval(
        "SELECT count(*) FROM audit_logs"
    )
    rng = random.Random(24)
    midnight = T0 + timedelta(days=3)
    ranges = [(None, None), (midnight, None), (None, midnight), (midnight, midnight + timedelta(days=2))]
    ranges += [(midnight + timedelta(hours=5), midnight + timedelta(hours=9))]  # within one day
    ranges += [(midnight - timedelta(hours=1), midnight + timedelta(hours=1))]  # across one midnight
    # Partial days near their midnights (the day's count less the rows outside) and far from them.
    ranges += [(midnight + timedelta(hours=2), midnight + timedelta(days=2, hours=21))]
    ranges += [(midnight + timedelta(hours=20), midnight + timedelta(days=2, hours=3))]
    for _ in range(12):
        start = T0 + timedelta(seconds=rng.randrange(-86400, 11 * 86400))
        ranges.append((start, start + timedelta(seconds=rng.randrange(1, 6 * 86400))))
        ranges.append((start, None) if rng.random() < 0.5 else (None, start))
    for start, end in ranges:
        for action in (None, SOME[1]):
            params: dict[str, str | int] = {"limit": 3}
            conditions, args = ["TRUE"], []
            for name, value, condition in (
                ("action", action, "action = ${}"),
                ("from", start, "occurred_at >= ${}"),
                ("to", end, "occurred_at < ${}"),
            ):
                if value is not None:
                    params[name] = value if isinstance(value, str) else _stamp(value)
                    args.append(value)
                    conditions.append(condition.format(len(args)))
            expected = await conn.fetchval(f"SELECT count(*) FROM audit_logs WHERE {' AND '.join(conditions)}", *args)
            response = await client.get(PATH, token=admin.token, params=params)
            assert response.status_code == 200, response.text
            assert response.json()["pagination"]["total"] == expected, (action, start, end)


async def test_a_from_on_the_last_day_there_is_is_a_plain_count(client, admin):
    response = await client.get(PATH, token=admin.token, params={"from": "9999-12-31T12:00:00Z"})
    assert response.status_code == 200 and response.json()["pagination"]["total"] == 0


async def test_the_page_and_its_day_counted_total_are_one_statement(client, admin, database_url, monkeypatch):
    from server import db

    await _rows(database_url, 40, seed=3)
    seen: list[str] = []
    record = db.QUERY_STATS.record
    monkeypatch.setattr(db.QUERY_STATS, "record", lambda sql, *rest: (seen.append(sql), record(sql, *rest)))
    params = {"action": SOME[0], "from": "2026-03-02T06:00:00Z", "to": "2026-03-08T18:00:00Z", "limit": 2}
    response = await client.get(PATH, token=admin.token, params=params)
    assert response.status_code == 200
    listed = [sql for sql in seen if "audit_logs" in sql]
    assert len(listed) == 1 and "audit_day_counts" in listed[0], listed

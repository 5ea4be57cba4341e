"""purchase_month_counts (migration 6) equals a recount of the purchases after every kind of write,
the user's lists take their totals from it, and a deep offset paged within its month returns the
page a plain ORDER BY ... OFFSET returns."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from server import db
from server.jobs import verification
from server.purchases import counts
from tests.conftest import with_settings
from tests.integration.purchases.helpers import assert_counts_match_purchases, ingest, make_shop


async def test_counts_follow_ingestion_confirmation_rejection_reversal_and_raw_sql(
    client, conn, settings, user, admin, make_account
):
    merchant, _ = await make_shop(conn)
    bank_fail, _ = await make_shop(conn)
    other = await make_account()
    mine = [(await ingest(client, user, merchant, "20.00")).json()["id"] for _ in range(5)]
    theirs = [(await ingest(client, other, merchant, "20.00")).json()["id"] for _ in range(3)]
    await ingest(client, user, bank_fail, "20.00")
    await assert_counts_match_purchases(conn)
    assert (await client.post(f"/api/v1/purchases/{mine[0]}/confirmation", token=admin.token)).status_code == 200
    assert (await client.post(f"/api/v1/purchases/{mine[1]}/confirmation", token=admin.token)).status_code == 200
    assert (await client.patch(f"/api/v1/purchases/{mine[1]}/reverse", token=admin.token)).status_code == 200
    assert (await client.patch(f"/api/v1/purchases/{theirs[0]}/reverse", token=admin.token)).status_code == 200
    rejecting = with_settings(settings, rejection_merchant_id=bank_fail, purchase_max_verification_attempts=1)
    await conn.execute("UPDATE purchases SET next_verification_at = now() + interval '1 day' WHERE merchant_id = $1",
                       uuid.UUID(merchant))  # fmt: skip
    assert await verification.tick(rejecting) == 1  # the bank_fail purchase, rejected
    await assert_counts_match_purchases(conn)
    kept = {
        (row["status"]): row["n"]
        for row in await conn.fetch(
            "SELECT status, n FROM purchase_month_counts WHERE user_id = $1", uuid.UUID(user.id)
        )
    }
    assert kept == {"pending": 3, "confirmed": 1, "reversed": 1, "rejected": 1}
    # Writers other than the service: a move to last month, a change of owner, a delete, a truncate.
    await conn.execute(
        "UPDATE purchases SET created_at = created_at - interval '40 days' WHERE id = $1", uuid.UUID(mine[2])
    )
    await conn.execute("UPDATE purchases SET verification_attempts = 3 WHERE id = $1", uuid.UUID(mine[3]))
    await conn.execute("DELETE FROM cashback_transactions WHERE purchase_id = $1", uuid.UUID(theirs[1]))
    await conn.execute("DELETE FROM purchases WHERE id = $1", uuid.UUID(theirs[1]))
    await assert_counts_match_purchases(conn)
    await conn.execute("TRUNCATE purchases, cashback_transactions")
    assert await conn.fetchval("SELECT count(*) FROM purchase_month_counts") == 0


async def test_a_count_removed_behind_the_triggers_back_is_refused_not_guessed(client, conn, user):
    merchant, _ = await make_shop(conn)
    purchase_id = uuid.UUID((await ingest(client, user, merchant, "100.00")).json()["id"])
    await conn.execute("DELETE FROM purchase_month_counts")
    with pytest.raises(asyncpg.DataCorruptedError, match="has no count for purchase"):
        await conn.execute("UPDATE purchases SET status = 'confirmed' WHERE id = $1", purchase_id)
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", purchase_id) == "pending"


async def test_the_user_s_lists_total_from_the_counts_not_a_count_of_purchases(client, conn, user, admin, monkeypatch):
    merchant, _ = await make_shop(conn)
    for _ in range(4):
        await ingest(client, user, merchant, "20.00")
    seen: list[str] = []
    record = db.QUERY_STATS.record
    monkeypatch.setattr(db.QUERY_STATS, "record", lambda sql, *rest: (seen.append(sql), record(sql, *rest)))
    requests = [
        ("/api/v1/users/me/purchases", user.token, {"limit": 2}),
        ("/api/v1/users/me/purchases", user.token, {"limit": 2, "status": "pending"}),
        ("/api/v1/users/me/wallet/transactions", user.token, {"limit": 2}),
        ("/api/v1/purchases", admin.token, {"limit": 2, "user_id": user.id}),
    ]
    for path, token, params in requests:
        seen.clear()
        response = await client.get(path, token=token, params=params)
        assert response.status_code == 200 and response.json()["pagination"]["total"] == 4, response.text
        listed = [sql for sql in seen if "LIMIT" in sql]
        assert len(listed) == 1 and "purchase_month_counts" in listed[0] and "COUNT(" not in listed[0], listed


async def _history(conn, user_id: str, merchant_id: str, offer_id: str, size: int) -> None:
    """`size` purchases over about 20 months, some sharing a created_at, some on a month's first
    instant (the boundary the deep pages cut at), in all four statuses."""
    await conn.execute(
        """
        INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, status, created_at)
        SELECT 'hist-' || n, $1, $2, $3, 10, 'EUR', (ARRAY['pending', 'confirmed', 'rejected', 'reversed'])[1 + n % 4],
               CASE WHEN n % 97 = 0 THEN date_trunc('month', now() - (n / 5) * interval '1 day') AT TIME ZONE 'UTC'
                    ELSE now() - (n / 5) * interval '1 day' - (n % 3) * interval '1 hour' END
        FROM generate_series(1, $4) AS n
        """,
        uuid.UUID(user_id),
        uuid.UUID(merchant_id),
        uuid.UUID(offer_id),
        size,
    )


async def test_deep_pages_equal_the_plain_offset_page(client, conn, user, monkeypatch):
    merchant, offer = await make_shop(conn)
    await _history(conn, user.id, merchant, offer, 3000)
    await assert_counts_match_purchases(conn)
    rng = random.Random(24)
    for walk_from in (0, counts.DEEP_OFFSET):  # every offset through the months, then the real threshold
        monkeypatch.setattr(counts, "DEEP_OFFSET", walk_from)
        for status in (None, "confirmed"):
            matching = "" if status is None else " AND status = $2"
            total = await conn.fetchval(
                f"SELECT count(*) FROM purchases WHERE user_id = $1{matching}",
                *[uuid.UUID(user.id), *([status] if status else [])],
            )
            cases = [0, 1, total - 1, total, total + 5] + [rng.randrange(0, total) for _ in range(12)]
            for offset in cases:
                limit = rng.choice((1, 7, 10, 100))
                params = {"offset": offset, "limit": limit, **({"status": status} if status else {})}
                response = await client.get("/api/v1/users/me/purchases", token=user.token, params=params)
                assert response.status_code == 200, response.text
                expected = await conn.fetch(
                    f"SELECT id FROM purchases WHERE user_id = $1{matching} "
                    f"ORDER BY created_at DESC, id DESC OFFSET {offset} LIMIT {limit}",
                    *[uuid.UUID(user.id), *([status] if status else [])],
                )
                body = response.json()
                assert [p["id"] for p in body["data"]] == [str(row["id"]) for row in expected], (status, offset, limit)
                assert body["pagination"]["total"] == total


def test_a_month_ends_at_the_next_month_s_first_instant():
    assert counts.month_end(datetime(2026, 1, 1).date()) == datetime(2026, 2, 1, tzinfo=UTC)
    assert counts.month_end(datetime(2026, 12, 1).date()) == datetime(2027, 1, 1, tzinfo=UTC)


async def test_concurrent_ingestions_confirmations_and_reversals_keep_the_counts(client, conn, admin, make_account):
    merchant, _ = await make_shop(conn, cap="1000")
    accounts = [await make_account() for _ in range(3)]
    seeded = [(await ingest(client, a, merchant, "20.00")).json()["id"] for a in accounts for _ in range(2)]
    work = [ingest(client, a, merchant, "20.00") for a in accounts for _ in range(8)]
    work += [client.post(f"/api/v1/purchases/{pid}/confirmation", token=admin.token) for pid in seeded[::2]]
    work += [client.patch(f"/api/v1/purchases/{pid}/reverse", token=admin.token) for pid in seeded[1::2]]
    responses = await asyncio.gather(*work)
    assert all(r.status_code in (200, 201) for r in responses), [r.status_code for r in responses]
    await assert_counts_match_purchases(conn)
    for account in accounts:
        listed = await client.get("/api/v1/users/me/purchases", token=account.token, params={"limit": 1})
        assert listed.json()["pagination"]["total"] == 10
        pending = await client.get(
            "/api/v1/users/me/purchases", token=account.token, params={"limit": 1, "status": "pending"}
        )
        assert pending.json()["pagination"]["total"] == 8


async def test_the_admin_list_by_status_and_days_totals_from_the_day_counts(client, conn, admin, make_account):
    merchant, offer = await make_shop(conn, cap="1000")
    accounts = [await make_account() for _ in range(3)]
    work = [ingest(client, a, merchant, "20.00") for a in accounts for _ in range(6)]  # several sessions, slots
    ids = [r.json()["id"] for r in await asyncio.gather(*work)]
    for pid in ids[:4]:
        assert (await client.post(f"/api/v1/purchases/{pid}/confirmation", token=admin.token)).status_code == 200
    assert (await client.patch(f"/api/v1/purchases/{ids[4]}/reverse", token=admin.token)).status_code == 200
    await _history(conn, accounts[0].id, merchant, offer, 300)  # 60 days back, all statuses
    await conn.execute(
        "UPDATE purchases SET created_at = created_at - interval '3 days' WHERE id = $1", uuid.UUID(ids[5])
    )
    await assert_counts_match_purchases(conn)
    today = datetime.now(UTC).date()
    rng = random.Random(20)
    for _ in range(25):
        params: dict[str, str] = {"limit": "2"}
        conditions, args = ["TRUE"], []
        if rng.random() < 0.7:
            params["status"] = rng.choice(("pending", "confirmed", "rejected", "reversed"))
            args.append(params["status"])
            conditions.append(f"status = ${len(args)}")
        start = today - timedelta(days=rng.randrange(0, 70))
        end = start + timedelta(days=rng.randrange(0, 40))
        for name, day, condition in (("start_date", start, ">="), ("end_date", end, "<=")):
            if rng.random() < 0.7:
                params[name] = day.isoformat()
                args.append(day)
                conditions.append(f"(created_at AT TIME ZONE 'UTC')::date {condition} ${len(args)}")
        expected = await conn.fetchval(f"SELECT count(*) FROM purchases WHERE {' AND '.join(conditions)}", *args)
        response = await client.get("/api/v1/purchases", token=admin.token, params=params)
        assert response.status_code == 200, response.text
        assert response.json()["pagination"]["total"] == expected, params
    await conn.execute("TRUNCATE purchases, cashback_transactions")
    assert await conn.fetchval("SELECT count(*) FROM purchase_day_counts") == 0


async def test_admin_pages_equal_the_plain_offset_page(client, conn, admin, user, make_account):
    """The admin list cuts its page's ids first (index-only where it can) and then reads those rows:
    every filter's page, ties on created_at included, is the plain ORDER BY ... OFFSET page."""
    merchant, offer = await make_shop(conn)
    other_merchant, other_offer = await make_shop(conn)
    other = await make_account()
    await _history(conn, user.id, merchant, offer, 600)
    await conn.execute("UPDATE purchases SET external_id = 'first-' || external_id")  # _history's ids repeat
    await _history(conn, other.id, other_merchant, other_offer, 400)
    today = datetime.now(UTC).date()
    rng = random.Random(7)
    filters = [
        ({"status": "confirmed"}, "status = 'confirmed'"),
        (
            {
                "status": "pending",
                "start_date": (today - timedelta(days=60)).isoformat(),
                "end_date": today.isoformat(),
            },
            f"status = 'pending' AND created_at >= '{today - timedelta(days=60)}'::date AT TIME ZONE 'UTC' "
            f"AND created_at < '{today + timedelta(days=1)}'::date AT TIME ZONE 'UTC'",
        ),
        ({"merchant_id": other_merchant}, f"merchant_id = '{other_merchant}'"),
        (
            {"user_id": user.id, "start_date": (today - timedelta(days=30)).isoformat()},
            f"user_id = '{user.id}' AND created_at >= '{today - timedelta(days=30)}'::date AT TIME ZONE 'UTC'",
        ),
        ({}, "TRUE"),
    ]
    for params, where in filters:
        total = await conn.fetchval(f"SELECT count(*) FROM purchases WHERE {where}")
        assert total > 20, params  # enough rows that offsets cut inside ties
        for offset in [0, 1, total - 1, total, total + 3] + [rng.randrange(0, total) for _ in range(6)]:
            limit = rng.choice((1, 7, 10, 100))
            response = await client.get(
                "/api/v1/purchases", token=admin.token, params={**params, "offset": offset, "limit": limit}
            )
            assert response.status_code == 200, response.text
            expected = await conn.fetch(
                f"SELECT id FROM purchases WHERE {where} ORDER BY created_at DESC, id DESC OFFSET {offset} LIMIT {limit}"
            )
            body = response.json()
            assert [p["id"] for p in body["data"]] == [str(row["id"]) for row in expected], (params, offset, limit)
            assert body["pagination"]["total"] == total, params

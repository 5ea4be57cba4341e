"""The audit list cuts its page's ids first (index-only through the filter's index) and then reads
those rows: with each kind of filter, ties on occurred_at included, the page is the plain
ORDER BY occurred_at DESC, id DESC ... OFFSET page, and the total is a recount."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

PATH = "/api/v1/audit-logs"
NOW = datetime.now(UTC).replace(microsecond=0)
ACTIONS = ("PURCHASE_CONFIRMED", "PURCHASE_REVERSED", "PAYOUT_REQUESTED")


async def test_audit_pages_equal_the_plain_offset_page(client, conn, admin):
    resource = uuid.uuid4()
    # 900 rows over 10 days, three to a timestamp, the newest ones of another action than the
    # filtered one (the shape that made the time index walk past them).
    await conn.execute(
        """
        INSERT INTO audit_logs (occurred_at, actor_type, action, resource_type, resource_id, details)
        SELECT $1::timestamptz - (n / 3) * interval '16 minutes',
               'system',
               CASE WHEN n < 60 THEN $3 ELSE ($2::text[])[1 + n % 3] END,
               'purchase',
               CASE WHEN n % 5 = 0 THEN $4 ELSE gen_random_uuid() END,
               jsonb_build_object('n', n)
        FROM generate_series(0, 899) AS n
        """,
        NOW,
        list(ACTIONS),
        ACTIONS[2],
        resource,
    )
    since = NOW - timedelta(days=4, hours=5)
    filters = [
        ({"action": ACTIONS[0]}, "action = $1", [ACTIONS[0]]),
        ({"action": ACTIONS[0], "from": since.isoformat()}, "action = $1 AND occurred_at >= $2", [ACTIONS[0], since]),
        (
            {"action": ACTIONS[1], "from": since.isoformat(), "to": (NOW - timedelta(hours=7)).isoformat()},
            "action = $1 AND occurred_at >= $2 AND occurred_at < $3",
            [ACTIONS[1], since, NOW - timedelta(hours=7)],
        ),
        ({"resource_id": str(resource)}, "resource_id = $1", [resource]),
        ({}, "TRUE", []),
    ]
    rng = random.Random(30)
    for params, where, args in filters:
        total = await conn.fetchval(f"SELECT count(*) FROM audit_logs WHERE {where}", *args)
        assert total > 20, params
        for offset in [0, 1, total - 1, total, total + 2] + [rng.randrange(0, total) for _ in range(6)]:
            limit = rng.choice((1, 7, 20, 100))
            response = await client.get(PATH, token=admin.token, params={**params, "offset": offset, "limit": limit})
            assert response.status_code == 200, response.text
            expected = await conn.fetch(
                f"SELECT id FROM audit_logs WHERE {where} ORDER BY occurred_at DESC, id DESC "
                f"OFFSET {offset} LIMIT {limit}",
                *args,
            )
            body = response.json()
            assert [row["id"] for row in body["data"]] == [str(row["id"]) for row in expected], (params, offset)
            assert body["pagination"]["total"] == total, params

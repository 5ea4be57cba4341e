"""purchase_month_counts (migration 7) equals a recount of the purchases after every kind of write,
and the user's lists take their totals from it."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from server import db
from server.jobs import verification
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

"""Ingestion under concurrency against the real database: idempotency and the monthly cap hold."""

import asyncio
import time
from datetime import datetime
from decimal import Decimal

import asyncpg

from server.db import parse_database_url
from tests.integration.purchases.helpers import assert_consistent, ingest, make_shop, wallet_row


async def test_50_concurrent_ingestions_with_one_external_id(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    responses = await asyncio.gather(
        *(ingest(client, user, merchant_id, "75.00", external_id="race-1") for _ in range(50))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 and statuses.count(409) == 49, statuses
    created = next(r for r in responses if r.status_code == 201).json()
    for response in responses:
        if response.status_code == 409:
            details = response.json()["error"]["details"]
            assert details["purchase_id"] == created["id"] and details["previously_processed_amount"] == "75.00"
    assert await conn.fetchval("SELECT count(*) FROM purchases WHERE external_id = 'race-1'") == 1
    assert await conn.fetchval("SELECT count(*) FROM cashback_transactions") == 1
    assert await wallet_row(conn, user.id) == {"pending": Decimal("3.75"), "available": 0, "paid": 0}
    await assert_consistent(conn)


async def test_concurrent_duplicates_from_several_users_leak_nothing(client, conn, make_account):
    merchant_id, _ = await make_shop(conn)
    accounts = [await make_account() for _ in range(10)]
    responses = await asyncio.gather(
        *(ingest(client, account, merchant_id, "20.00", external_id="race-2") for account in accounts for _ in range(3))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 and statuses.count(409) == 29, statuses
    owner = await conn.fetchval("SELECT user_id FROM purchases WHERE external_id = 'race-2'")
    for account, response in zip([a for a in accounts for _ in range(3)], responses):
        if response.status_code == 409:
            details = response.json()["error"]["details"]
            if account.id == str(owner):
                assert "purchase_id" in details
            else:
                assert details == {"external_id": "race-2"}
    credited = await conn.fetchval("SELECT sum(pending_balance) FROM wallets")
    assert credited == Decimal("1.00")
    await assert_consistent(conn)


async def test_concurrent_ingestions_cannot_pass_the_monthly_cap(client, conn, user):
    merchant_id, _ = await make_shop(conn, cap="50")
    responses = await asyncio.gather(*(ingest(client, user, merchant_id, "300.00") for _ in range(30)))
    assert all(r.status_code == 201 for r in responses)
    credited = sorted((Decimal(r.json()["cashback_amount"]) for r in responses), reverse=True)
    # 15.00 each until the cap: 15 + 15 + 15 + 5, then zeros.
    assert credited[:4] == [Decimal("15.00")] * 3 + [Decimal("5.00")]
    assert set(credited[4:]) == {Decimal("0.00")}
    assert await conn.fetchval("SELECT sum(cashback_amount) FROM purchases") == Decimal("50.00")
    assert await wallet_row(conn, user.id) == {"pending": Decimal("50.00"), "available": 0, "paid": 0}
    await assert_consistent(conn)


async def test_concurrent_ingestion_and_reversal_keep_the_wallet_exact(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn, cap="1000")
    first = [(await ingest(client, user, merchant_id, "100.00")).json()["id"] for _ in range(10)]
    reversals = [client.patch(f"/api/v1/purchases/{pid}/reverse", token=admin.token) for pid in first]
    confirmations = [client.post(f"/api/v1/purchases/{pid}/confirmation", token=admin.token) for pid in first]
    more = [ingest(client, user, merchant_id, "100.00") for _ in range(10)]
    responses = await asyncio.gather(*reversals, *confirmations, *more)
    assert all(r.status_code < 500 for r in responses)
    assert all(r.status_code == 200 for r in responses[:10])
    await assert_consistent(conn)


async def wait_until_blocked_by(database_url: str, holder: asyncpg.Connection, timeout: float = 10.0) -> None:
    """Return once some session waits for a lock that `holder`'s open transaction holds. Asked from
    a connection of its own, outside any transaction, so every poll reads the current activity."""
    observer = await asyncpg.connect(**parse_database_url(database_url))
    try:
        deadline = time.monotonic() + timeout
        while not await observer.fetchval(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))",
            holder.get_server_pid(),
        ):
            assert time.monotonic() < deadline, "the ingestion never waited for the other insert"
            await asyncio.sleep(0.005)  # a poll of the condition above, not a guess at a duration
    finally:
        await observer.close()


async def test_the_callers_own_concurrent_insert_of_the_external_id_is_a_409_with_its_details(
    client, conn, database_url, user
):
    """The race path again, the first insert being the caller's own (a retry racing its original):
    the 409 names that purchase, read after the unique index refused the second insert."""
    merchant_id, offer_id = await make_shop(conn)
    transaction = conn.transaction()
    await transaction.start()
    purchase_id, created_at = await conn.fetchrow(
        "INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount) "
        "VALUES ('race-own', $1, $2, $3, 20, 'EUR', 0.00) RETURNING id, created_at",
        user.id,
        merchant_id,
        offer_id,
    )
    request = asyncio.ensure_future(ingest(client, user, merchant_id, "20.00", external_id="race-own"))
    try:
        await wait_until_blocked_by(database_url, conn)
    finally:
        await transaction.commit()
    response = await request
    assert response.status_code == 409, response.text
    details = response.json()["error"]["details"]
    assert details["external_id"] == "race-own" and details["purchase_id"] == str(purchase_id)
    assert details["previously_processed_amount"] == "20.00"
    assert datetime.fromisoformat(details["previously_created_at"].replace("Z", "+00:00")) == created_at
    assert await conn.fetchval("SELECT count(*) FROM purchases WHERE user_id = $1", user.id) == 1


async def test_another_users_concurrent_insert_of_the_external_id_is_a_409(
    client, conn, database_url, user, make_account
):
    """The race path: the duplicate is not yet committed when record_purchase() looks, so its insert
    waits on the unique index, then fails with uq_purchases_external_id; nothing of it remains."""
    other = await make_account()
    merchant_id, offer_id = await make_shop(conn)
    transaction = conn.transaction()
    await transaction.start()
    purchase_id = await conn.fetchval(
        "INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount) "
        "VALUES ('race-3', $1, $2, $3, 20, 'EUR', 1.00) RETURNING id",
        other.id,
        merchant_id,
        offer_id,
    )
    await conn.execute(
        "INSERT INTO cashback_transactions (user_id, purchase_id, amount, status) VALUES ($1, $2, 1.00, 'pending')",
        other.id,
        purchase_id,
    )
    await conn.execute("UPDATE wallets SET pending_balance = pending_balance + 1.00 WHERE user_id = $1", other.id)
    request = asyncio.ensure_future(ingest(client, user, merchant_id, "75.00", external_id="race-3"))
    try:
        await wait_until_blocked_by(database_url, conn)
    finally:
        await transaction.commit()
    response = await request
    assert response.status_code == 409, response.text
    assert response.json()["error"] == {
        "code": "DUPLICATE_PURCHASE",
        "message": "A purchase with external ID 'race-3' has already been processed.",
        "details": {"external_id": "race-3"},
    }
    assert await conn.fetchval("SELECT count(*) FROM purchases WHERE user_id = $1", user.id) == 0
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": 0, "paid": 0}
    await assert_consistent(conn)

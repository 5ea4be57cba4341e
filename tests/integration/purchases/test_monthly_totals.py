"""cashback_monthly_totals (migration 4) equals the sum over the purchases that count, whoever writes.

The cap of API.md §4.1 reads it, so after every kind of write (ingestion, admin reversal, the
job's rejection, raw SQL) the total of each (user, offer, UTC month) is compared with the sum of
cashback_amount over its pending and confirmed purchases, and the next ingestion's credit shows
that the cap read it."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from server.jobs import verification
from tests.conftest import with_settings
from tests.integration.purchases.helpers import (
    assert_consistent,
    assert_totals_match_purchases,
    ingest,
    make_offer,
    make_shop,
    monthly_total,
    today,
)


def _this_month_start() -> datetime:
    now = datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def _insert_purchase(
    conn, user_id, merchant_id, offer_id, cashback: str, *, status="pending", created_at: datetime | None = None
) -> uuid.UUID:
    """A purchase written the way a script would, with its transaction and wallet movement."""
    purchase_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, status, "
        "cashback_amount, created_at) VALUES ($1, $2, $3, $4, $5, 100, 'EUR', $6, $7, coalesce($8, now()))",
        purchase_id,
        f"script-{purchase_id}",
        uuid.UUID(user_id),
        uuid.UUID(merchant_id),
        uuid.UUID(offer_id),
        status,
        Decimal(cashback),
        created_at,
    )
    balance = "pending_balance" if status == "pending" else "available_balance"
    await conn.execute(
        "INSERT INTO cashback_transactions (user_id, purchase_id, amount, status) VALUES ($1, $2, $3, $4)",
        uuid.UUID(user_id),
        purchase_id,
        Decimal(cashback),
        "pending" if status == "pending" else "available",
    )
    await conn.execute(
        f"UPDATE wallets SET {balance} = {balance} + $2 WHERE user_id = $1", uuid.UUID(user_id), Decimal(cashback)
    )
    return purchase_id


async def test_ingestions_add_what_they_credit(client, conn, user, make_account):
    merchant_id, offer_id = await make_shop(conn, cap="10")
    other_merchant, other_offer = await make_shop(conn, cap="100")
    other = await make_account()
    credited = [
        (await ingest(client, user, merchant_id, amount)).json()["cashback_amount"]
        for amount in ("75.00", "49.50", "100.00", "40.00")
    ]
    assert credited == ["3.75", "2.48", "3.77", "0.00"]  # the cap: 10 - 6.23 = 3.77, then nothing
    assert await monthly_total(conn, user.id, offer_id) == Decimal("10.00")
    assert (await ingest(client, user, other_merchant, "33.33")).json()["cashback_amount"] == "1.67"
    assert (await ingest(client, other, merchant_id, "20.00")).json()["cashback_amount"] == "1.00"
    assert await monthly_total(conn, user.id, other_offer) == Decimal("1.67")
    assert await monthly_total(conn, other.id, offer_id) == Decimal("1.00")
    assert await monthly_total(conn, other.id, other_offer) == Decimal("0.00")
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_the_cap_sequence_of_the_acceptance_flow(client, conn, user):
    merchant_id, offer_id = await make_shop(conn, cap="50")
    for amount, expected, total in (
        ("900.00", "45.00", "45.00"),
        ("200.00", "5.00", "50.00"),
        ("100.00", "0.00", "50.00"),
    ):
        response = await ingest(client, user, merchant_id, amount)
        assert response.status_code == 201
        assert response.json()["cashback_amount"] == expected
        assert await monthly_total(conn, user.id, offer_id) == Decimal(total)
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_admin_reversals_of_pending_and_confirmed_purchases_give_the_cap_back(client, conn, user, admin):
    merchant_id, offer_id = await make_shop(conn, cap="10")
    first = (await ingest(client, user, merchant_id, "100.00")).json()["id"]  # 5.00
    second = (await ingest(client, user, merchant_id, "100.00")).json()["id"]  # 5.00
    confirmed = await client.post(f"/api/v1/purchases/{first}/confirmation", token=admin.token)
    assert confirmed.status_code == 200
    assert await monthly_total(conn, user.id, offer_id) == Decimal("10.00")  # a confirmation still counts
    assert (await client.patch(f"/api/v1/purchases/{second}/reverse", token=admin.token)).status_code == 200
    assert await monthly_total(conn, user.id, offer_id) == Decimal("5.00")
    await assert_totals_match_purchases(conn)
    assert (await client.patch(f"/api/v1/purchases/{first}/reverse", token=admin.token)).status_code == 200
    assert await monthly_total(conn, user.id, offer_id) == Decimal("0.00")
    await assert_totals_match_purchases(conn)
    # The whole cap is available again.
    assert (await ingest(client, user, merchant_id, "400.00")).json()["cashback_amount"] == "10.00"
    assert await monthly_total(conn, user.id, offer_id) == Decimal("10.00")
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_a_rejection_by_the_verification_job_gives_the_cap_back(client, conn, settings, user):
    bank_fail, offer_id = await make_shop(conn, cap="10")
    settings = with_settings(settings, rejection_merchant_id=bank_fail, purchase_max_verification_attempts=1)
    purchase_id = (await ingest(client, user, bank_fail, "300.00")).json()["id"]  # 15.00, capped to 10.00
    assert await monthly_total(conn, user.id, offer_id) == Decimal("10.00")
    assert await verification.tick(settings) == 1
    row = await conn.fetchrow("SELECT status, cashback_amount FROM purchases WHERE id = $1", uuid.UUID(purchase_id))
    assert (row["status"], row["cashback_amount"]) == ("rejected", Decimal("10.00"))  # it keeps c, uncounted
    assert await monthly_total(conn, user.id, offer_id) == Decimal("0.00")
    await assert_totals_match_purchases(conn)
    assert (await ingest(client, user, bank_fail, "300.00")).json()["cashback_amount"] == "10.00"
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_raw_sql_updates_deletes_and_truncate_keep_the_totals(client, conn, user, make_account):
    merchant_id, offer_id = await make_shop(conn, cap="100")
    other = await make_account()
    ids = [uuid.UUID((await ingest(client, user, merchant_id, "100.00")).json()["id"]) for _ in range(4)]
    assert await monthly_total(conn, user.id, offer_id) == Decimal("20.00")
    # A correction of the amount, a status change each way, a move to another user and a delete.
    await conn.execute("UPDATE purchases SET cashback_amount = 1.25 WHERE id = $1", ids[0])
    await conn.execute("UPDATE purchases SET status = 'rejected' WHERE id = $1", ids[1])
    assert await monthly_total(conn, user.id, offer_id) == Decimal("11.25")
    await conn.execute("UPDATE purchases SET status = 'confirmed' WHERE id = $1", ids[1])
    await conn.execute("UPDATE purchases SET user_id = $2 WHERE id = $1", ids[2], uuid.UUID(other.id))
    await conn.execute("DELETE FROM cashback_transactions WHERE purchase_id = $1", ids[3])
    await conn.execute("DELETE FROM purchases WHERE id = $1", ids[3])
    assert await monthly_total(conn, user.id, offer_id) == Decimal("6.25")
    assert await monthly_total(conn, other.id, offer_id) == Decimal("5.00")
    await assert_totals_match_purchases(conn)
    # One statement over several rows, each applied relative to the others.
    await conn.execute("UPDATE purchases SET cashback_amount = cashback_amount + 0.01")
    assert await monthly_total(conn, user.id, offer_id) == Decimal("6.27")
    assert await monthly_total(conn, other.id, offer_id) == Decimal("5.01")
    await assert_totals_match_purchases(conn)
    # The cap reads the corrected total: 100 - 6.27.
    assert (await ingest(client, user, merchant_id, "5000.00")).json()["cashback_amount"] == "93.73"
    await conn.execute("TRUNCATE purchases CASCADE")
    assert await conn.fetchval("SELECT count(*) FROM cashback_monthly_totals") == 0
    assert (await ingest(client, user, merchant_id, "100.00")).json()["cashback_amount"] == "5.00"
    await assert_totals_match_purchases(conn)


async def test_last_months_purchases_count_toward_last_months_total_only(client, conn, user):
    merchant_id, offer_id = await make_shop(conn, cap="50")
    this_month = _this_month_start()
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    # Last month the cap was reached, the last cent a second before this month began.
    await _insert_purchase(
        conn, user.id, merchant_id, offer_id, "45.00", status="confirmed", created_at=last_month + timedelta(days=3)
    )
    await _insert_purchase(conn, user.id, merchant_id, offer_id, "5.00", created_at=this_month - timedelta(seconds=1))
    assert await monthly_total(conn, user.id, offer_id, last_month.date()) == Decimal("50.00")
    assert await monthly_total(conn, user.id, offer_id) == Decimal("0.00")
    assert (await ingest(client, user, merchant_id, "900.00")).json()["cashback_amount"] == "45.00"
    # A purchase written by a script with this month's first instant counts this month.
    await _insert_purchase(conn, user.id, merchant_id, offer_id, "2.00", created_at=this_month)
    assert await monthly_total(conn, user.id, offer_id) == Decimal("47.00")
    assert (await ingest(client, user, merchant_id, "200.00")).json()["cashback_amount"] == "3.00"
    assert await monthly_total(conn, user.id, offer_id, last_month.date()) == Decimal("50.00")
    await assert_totals_match_purchases(conn)
    # Moving a purchase between months moves its cashback between the totals.
    moved = await conn.fetchval("SELECT id FROM purchases WHERE cashback_amount = 2.00")
    await conn.execute("UPDATE purchases SET created_at = $2 WHERE id = $1", moved, last_month)
    assert await monthly_total(conn, user.id, offer_id) == Decimal("48.00")
    assert await monthly_total(conn, user.id, offer_id, last_month.date()) == Decimal("52.00")
    assert (await ingest(client, user, merchant_id, "200.00")).json()["cashback_amount"] == "2.00"
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_another_offer_of_the_merchant_has_its_own_total(client, conn, user):
    merchant_id, offer_id = await make_shop(conn, cap="10")
    assert (await ingest(client, user, merchant_id, "400.00")).json()["cashback_amount"] == "10.00"
    await conn.execute("UPDATE offers SET active = false WHERE id = $1", uuid.UUID(offer_id))
    new_offer = await make_offer(conn, merchant_id, cap="10", start=today())
    assert (await ingest(client, user, merchant_id, "20.00")).json()["cashback_amount"] == "1.00"
    assert await monthly_total(conn, user.id, offer_id) == Decimal("10.00")
    assert await monthly_total(conn, user.id, new_offer) == Decimal("1.00")
    await assert_totals_match_purchases(conn)


async def test_concurrent_ingestions_and_reversals_keep_the_totals(client, conn, make_account, admin):
    merchant_id, offer_id = await make_shop(conn, cap="50")
    accounts = [await make_account() for _ in range(3)]
    seeded = {a.id: (await ingest(client, a, merchant_id, "100.00")).json()["id"] for a in accounts}  # 5.00 each
    work = [ingest(client, a, merchant_id, "300.00") for a in accounts for _ in range(10)]
    work += [client.patch(f"/api/v1/purchases/{pid}/reverse", token=admin.token) for pid in seeded.values()]
    responses = await asyncio.gather(*work)
    assert all(r.status_code in (200, 201) for r in responses), [r.status_code for r in responses]
    for account in accounts:
        total = await monthly_total(conn, account.id, offer_id)
        # Never past the cap; reached unless the reversal came after the cap was filled.
        assert Decimal("45.00") <= total <= Decimal("50.00"), total
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_a_total_removed_behind_the_triggers_back_is_refused_not_guessed(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    purchase_id = uuid.UUID((await ingest(client, user, merchant_id, "100.00")).json()["id"])
    await conn.execute("DELETE FROM cashback_monthly_totals")
    with pytest.raises(asyncpg.DataCorruptedError, match="has no total for purchase"):
        await conn.execute("UPDATE purchases SET status = 'rejected' WHERE id = $1", purchase_id)
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", purchase_id) == "pending"

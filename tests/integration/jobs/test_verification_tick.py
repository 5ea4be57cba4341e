"""One verification tick in process against the real database (API.md §4.7)."""

import asyncio
import json
import uuid
from datetime import timedelta
from decimal import Decimal

from server.jobs import verification
from server.jobs.runner import run_forever
from tests.conftest import with_settings
from tests.integration.purchases.helpers import assert_consistent, ingest, make_shop, wallet_row

REASON_3 = "Bank reconciliation failed: no matching bank movement found after 3 verification attempt(s)."


async def _set_flag(conn, enabled, scope_type="global", scope_id=None):
    await conn.execute(
        "INSERT INTO feature_flags (key, enabled, scope_type, scope_id) VALUES ('purchase_auto_confirm', $1, $2, $3)",
        enabled,
        scope_type,
        scope_id,
    )


async def _make_due(conn):
    await conn.execute(
        "UPDATE purchases SET next_verification_at = now() - interval '1 second' WHERE status = 'pending'"
    )


async def test_tick_confirms_due_purchases_as_system(client, conn, settings, user):
    merchant_id, _ = await make_shop(conn)
    ids = [(await ingest(client, user, merchant_id, "75.00")).json()["id"] for _ in range(3)]
    assert await verification.tick(settings) == 3
    assert await verification.tick(settings) == 0
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": Decimal("11.25"), "paid": 0}
    rows = await conn.fetch("SELECT * FROM audit_logs ORDER BY occurred_at")
    assert sorted(str(r["resource_id"]) for r in rows) == sorted(ids)
    for row in rows:
        assert (row["action"], row["actor_type"], row["actor_id"], row["outcome"]) == (
            "PURCHASE_CONFIRMED",
            "system",
            None,
            "success",
        )
        assert json.loads(row["details"]) == {
            "merchant_id": merchant_id,
            "amount": "75.00",
            "currency": "EUR",
            "cashback_amount": "3.75",
        }
    statuses = await conn.fetch("SELECT status FROM cashback_transactions")
    assert {r["status"] for r in statuses} == {"available"}
    await assert_consistent(conn)


async def test_purchases_not_yet_due_wait(client, conn, settings, user):
    merchant_id, _ = await make_shop(conn)
    await ingest(client, user, merchant_id)
    await conn.execute("UPDATE purchases SET next_verification_at = now() + interval '1 hour'")
    assert await verification.tick(settings) == 0
    assert await conn.fetchval("SELECT status FROM purchases") == "pending"


async def test_ineligible_purchases_are_deferred_without_counting_an_attempt(
    client, conn, settings, user, make_account
):
    settings = with_settings(settings, purchase_confirmation_interval_seconds=30)
    merchant_id, _ = await make_shop(conn)
    paused_merchant, _ = await make_shop(conn)
    vip = await make_account()
    await _set_flag(conn, False)  # global off ...
    await _set_flag(conn, True, "user", vip.id)  # ... but on for this user
    await _set_flag(conn, False, "merchant", paused_merchant)
    await _set_flag(conn, True, "merchant", merchant_id)
    plain = (await ingest(client, user, merchant_id)).json()["id"]
    vip_ok = (await ingest(client, vip, merchant_id)).json()["id"]
    vip_paused = (await ingest(client, vip, paused_merchant)).json()["id"]
    before = await conn.fetchval("SELECT now()")
    assert await verification.tick(settings) == 3
    rows = {str(r["id"]): r for r in await conn.fetch("SELECT * FROM purchases")}
    assert rows[vip_ok]["status"] == "confirmed"
    for deferred in (plain, vip_paused):
        assert rows[deferred]["status"] == "pending" and rows[deferred]["verification_attempts"] == 0
        delay = rows[deferred]["next_verification_at"] - before
        assert timedelta(seconds=29) < delay < timedelta(seconds=40)
    assert await verification.tick(settings) == 0  # not due again until the next interval
    # Turning the global flag back on releases the user's purchase on its next due tick.
    await conn.execute("UPDATE feature_flags SET enabled = true WHERE scope_type = 'global'")
    await _make_due(conn)
    assert await verification.tick(settings) == 2
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", uuid.UUID(plain)) == "confirmed"
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", uuid.UUID(vip_paused)) == "pending"
    await assert_consistent(conn)


async def test_rejection_merchant_soft_fails_then_rejects(client, conn, settings, user):
    bank_fail, _ = await make_shop(conn)
    settings = with_settings(settings, rejection_merchant_id=bank_fail, purchase_confirmation_interval_seconds=60)
    purchase_id = uuid.UUID((await ingest(client, user, bank_fail, "49.50")).json()["id"])
    for attempt in (1, 2):
        assert await verification.tick(settings) == 1
        row = await conn.fetchrow("SELECT * FROM purchases WHERE id = $1", purchase_id)
        assert row["status"] == "pending" and row["verification_attempts"] == attempt
        assert await verification.tick(settings) == 0
        await _make_due(conn)
    assert await verification.tick(settings) == 1
    row = await conn.fetchrow("SELECT * FROM purchases WHERE id = $1", purchase_id)
    assert row["status"] == "rejected" and row["verification_attempts"] == 3
    assert row["cashback_amount"] == Decimal("2.48")  # the purchase keeps c
    assert await conn.fetchval("SELECT status FROM cashback_transactions") == "reversed"
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": 0, "paid": 0}
    audit = await conn.fetchrow("SELECT * FROM audit_logs")
    assert (audit["action"], audit["actor_type"], audit["actor_id"]) == ("PURCHASE_REJECTED", "system", None)
    assert json.loads(audit["details"]) == {
        "merchant_id": bank_fail,
        "amount": "49.50",
        "currency": "EUR",
        "cashback_amount": "2.48",
        "reason": REASON_3,
        "attempts": 3,
    }
    await assert_consistent(conn)


async def test_rejection_after_the_configured_number_of_attempts(client, conn, settings, user):
    bank_fail, _ = await make_shop(conn)
    settings = with_settings(settings, rejection_merchant_id=bank_fail, purchase_max_verification_attempts=1)
    await ingest(client, user, bank_fail)
    assert await verification.tick(settings) == 1
    assert await conn.fetchval("SELECT details->>'reason' FROM audit_logs") == (
        "Bank reconciliation failed: no matching bank movement found after 1 verification attempt(s)."
    )


async def test_a_failing_purchase_is_logged_skipped_and_stays_due(
    client, conn, settings, user, make_account, business_warnings
):
    merchant_id, _ = await make_shop(conn)
    other = await make_account()
    broken = (await ingest(client, user, merchant_id, "100.00")).json()["id"]
    fine = (await ingest(client, other, merchant_id, "100.00")).json()["id"]
    await conn.execute("UPDATE wallets SET pending_balance = 0 WHERE user_id = $1", user.id)  # drifted wallet
    result = await verification.run_tick(settings)
    assert (result.confirmed, result.failed) == (1, 1)
    rows = {str(r["id"]): r for r in await conn.fetch("SELECT id, status, verification_attempts FROM purchases")}
    assert rows[fine]["status"] == "confirmed"
    assert rows[broken]["status"] == "pending" and rows[broken]["verification_attempts"] == 0
    assert [w["reason"] for w in business_warnings] == ["balance_would_go_negative"]
    assert await conn.fetchval("SELECT count(*) FROM audit_logs WHERE resource_id = $1", uuid.UUID(broken)) == 0


async def test_runner_ticks_at_start_and_then_every_interval(client, conn, settings, user):
    merchant_id, _ = await make_shop(conn)
    settings = with_settings(settings, purchase_confirmation_interval_seconds=0.1)
    await ingest(client, user, merchant_id)
    stop = asyncio.Event()
    runner = asyncio.ensure_future(run_forever(settings, stop))
    try:

        async def confirmed_count():
            return await conn.fetchval("SELECT count(*) FROM purchases WHERE status = 'confirmed'")

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await confirmed_count() < 1 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert await confirmed_count() == 1
        await ingest(client, user, merchant_id)  # picked up by a later tick
        deadline = loop.time() + 10
        while await confirmed_count() < 2 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert await confirmed_count() == 2
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)
    await assert_consistent(conn)

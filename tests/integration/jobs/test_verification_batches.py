"""The job's batches (docs/adr/0032-verification-in-batches.md) against its one-at-a-time path: the
same mix of purchases, arranged identically in two databases, ends in the same rows either way."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import asyncpg
from loguru import logger

from server import db
from server.config import Settings
from server.db import parse_database_url
from server.db_pool import WaitBounds
from server.jobs import verification
from server.wallets.consistency import find_mismatches
from tests.integration.purchases.helpers import assert_totals_match_purchases


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


OK_SHOP, BANK_FAILS, PAUSED_SHOP = _id(0xA1), _id(0xA2), _id(0xA3)
CONFIRMS, FLAG_OFF, BANK_USER, DRIFTED, HELD, BIG = (_id(0x100 + n) for n in range(6))
NEAR_LIMIT = "99999999999999999.00"  # numeric(19,2)'s largest balance is ...99.99


async def _arrange(conn: asyncpg.Connection) -> None:
    """Every kind of purchase the job meets, with fixed ids, so two databases hold the same rows.

    CONFIRMS: confirmed, some credited 0.00 (over the monthly cap); FLAG_OFF: auto-confirm off for
    the user, deferred; BANK_USER: at the merchant the bank never matches, soft-failed, or rejected
    on its last attempt; DRIFTED: a wallet whose pending balance covers only its first purchase;
    HELD: a wallet another transaction holds while the tick runs; BIG: an available balance that
    one more confirmation would take past numeric(19,2); and purchases at a merchant paused by its
    flag, one not yet due, and one already confirmed."""
    for user in (CONFIRMS, FLAG_OFF, BANK_USER, DRIFTED, HELD, BIG):
        await conn.execute(
            "INSERT INTO users (id, email, hashed_password, role) VALUES ($1, $2, 'x', 'user')", user, f"{user}@e.test"
        )
        await conn.execute("INSERT INTO wallets (user_id) VALUES ($1)", user)
    for shop in (OK_SHOP, BANK_FAILS, PAUSED_SHOP):
        await conn.execute(
            "INSERT INTO merchants (id, name, default_cashback_percentage) VALUES ($1, $2, 5)", shop, f"S{shop}"
        )
        await conn.execute(
            "INSERT INTO offers (id, merchant_id, percentage, start_date, end_date, monthly_cap_per_user) "
            "VALUES ($1, $1, 5, current_date - 1, current_date + 30, 1000)",
            shop,
        )
    await conn.execute(
        "INSERT INTO feature_flags (key, enabled, scope_type, scope_id) VALUES "
        "('purchase_auto_confirm', false, 'user', $1), ('purchase_auto_confirm', false, 'merchant', $2)",
        FLAG_OFF,
        PAUSED_SHOP,
    )
    rows = [
        *[(CONFIRMS, OK_SHOP, "2.50" if n % 3 else "0.00", 0, "pending", -1) for n in range(7)],
        *[(FLAG_OFF, OK_SHOP, "1.00", 0, "pending", -1) for _ in range(2)],
        *[(BANK_USER, BANK_FAILS, "1.25", attempts, "pending", -1) for attempts in (0, 2, 1, 2)],
        *[(DRIFTED, OK_SHOP, "4.00", 0, "pending", -1) for _ in range(3)],
        *[(HELD, OK_SHOP, "3.00", 0, "pending", -1) for _ in range(3)],
        (BIG, OK_SHOP, "1.00", 0, "pending", -1),
        (CONFIRMS, PAUSED_SHOP, "1.50", 0, "pending", -1),
        (CONFIRMS, OK_SHOP, "5.00", 0, "pending", 3600),  # not due for an hour
        (CONFIRMS, OK_SHOP, "5.00", 0, "confirmed", -1),
    ]
    for n, (user, shop, cashback, attempts, status, due_in) in enumerate(rows):
        # Interleaved arrival (created_at n ms apart, users mixed) so the batches cut across users.
        await conn.execute(
            "INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, "
            "cashback_amount, verification_attempts, status, created_at, next_verification_at) "
            "VALUES ($1, $2, $3, $4, $4, 50.00, 'EUR', $5::numeric, $6, $7, "
            "now() - interval '1 hour' + make_interval(secs => $8 * 0.001), now() + make_interval(secs => $9))",
            _id(0x1000 + (n * 7) % len(rows)),
            f"batch-{n}",
            user,
            shop,
            cashback,
            attempts,
            status,
            n,
            due_in,
        )
        await conn.execute(
            "INSERT INTO cashback_transactions (user_id, purchase_id, amount, status) VALUES ($1, $2, $3::numeric, $4)",
            user,
            _id(0x1000 + (n * 7) % len(rows)),
            cashback,
            "available" if status == "confirmed" else "pending",
        )
    await conn.execute(
        "UPDATE wallets AS w SET pending_balance = s.pending, available_balance = s.available FROM ("
        "  SELECT user_id, coalesce(sum(cashback_amount) FILTER (WHERE status = 'pending'), 0) AS pending,"
        "         coalesce(sum(cashback_amount) FILTER (WHERE status = 'confirmed'), 0) AS available"
        "  FROM purchases GROUP BY user_id) AS s WHERE s.user_id = w.user_id"
    )
    await conn.execute("UPDATE wallets SET pending_balance = 4.00 WHERE user_id = $1", DRIFTED)
    await conn.execute("UPDATE wallets SET available_balance = $2::numeric WHERE user_id = $1", BIG, NEAR_LIMIT)


async def _outcome(conn: asyncpg.Connection, tick_started) -> dict:
    """Everything the job may change, in a form two databases can compare."""
    purchases = await conn.fetch(
        "SELECT p.id, p.status, p.verification_attempts, p.cashback_amount, p.next_verification_at > $1 AS pushed, "
        "t.status AS transaction_status FROM purchases p JOIN cashback_transactions t ON t.purchase_id = p.id "
        "ORDER BY p.id",
        tick_started,
    )
    wallets = await conn.fetch(
        "SELECT user_id, pending_balance, available_balance, paid_balance FROM wallets ORDER BY user_id"
    )
    audit = await conn.fetch(
        "SELECT resource_id, action, actor_type, actor_id, outcome, details FROM audit_logs ORDER BY resource_id"
    )
    totals = await conn.fetch("SELECT user_id, offer_id, month, earned FROM cashback_monthly_totals ORDER BY 1, 2, 3")
    return {
        "purchases": [dict(r) for r in purchases],
        "wallets": [dict(r) for r in wallets],
        "audit": [{**dict(r), "details": json.loads(r["details"])} for r in audit],
        "totals": [dict(r) for r in totals],
    }


async def _wait_for(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        await asyncio.sleep(0.01)


WAITING_SQL = """
SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
WHERE NOT l.granted AND a.datname = current_database()
"""


async def _run(
    databases, settings: Settings, batch_size: int, hold_through: bool = False, batches_fail: bool = False
) -> tuple[dict, verification.TickResult]:
    """Arrange the mix in a new database and run one tick with `batch_size`, while a request holds
    HELD's wallet until the job waits for it, or with `hold_through` for the whole tick (past the
    200 ms lock bound); returns the outcome and the tick's counts."""
    name = databases.create("batch")
    url = databases.url(name)
    conn = await asyncpg.connect(**parse_database_url(url))
    holder = await asyncpg.connect(**parse_database_url(url))
    try:
        await _arrange(conn)
        tick_started = await conn.fetchval("SELECT now()")
        holding = holder.transaction()
        await holding.start()
        await holder.execute("SELECT 1 FROM wallets WHERE user_id = $1 FOR UPDATE", HELD)
        await db.init_db(url, 1, 4, slow_query_ms=10_000, bounds=WaitBounds(lock_ms=200))
        failed_batches: list[str] = []
        sink = logger.add(failed_batches.append, filter=lambda r: r["extra"].get("event") == "job.batch_failed")
        try:
            job_settings = replace(
                settings, database_url=url, rejection_merchant_id=str(BANK_FAILS), purchase_job_batch_size=batch_size
            )
            tick = asyncio.ensure_future(verification.run_tick(job_settings))

            async def job_waits_for_the_wallet() -> bool:
                return bool(await conn.fetchval(WAITING_SQL))

            if hold_through:
                result = await asyncio.wait_for(tick, 30)
            else:
                await _wait_for(job_waits_for_the_wallet, 10)
            await holding.commit()
            result = await asyncio.wait_for(tick, 30)
        finally:
            logger.remove(sink)
            await db.close_db()
        # The batches settled what they could, none fell back whole (unless made to).
        assert bool(failed_batches) == batches_fail
        outcome = await _outcome(conn, tick_started)
        await assert_totals_match_purchases(conn)
        # The recount: every wallet matches its purchases and payouts but the two arranged off.
        assert {m.user_id for m in await find_mismatches(conn)} == {str(DRIFTED), str(BIG)}
        return outcome, result
    finally:
        await holder.close()
        await conn.close()
        databases.drop(name)


async def test_a_batch_ends_in_the_rows_one_at_a_time_ends_in(databases, settings, business_warnings):
    one_by_one, single = await _run(databases, settings, batch_size=1)
    batched, batches = await _run(databases, settings, batch_size=4)
    assert batched == one_by_one
    counts = (batches.confirmed, batches.rejected, batches.soft_failed, batches.deferred, batches.failed)
    assert counts == (single.confirmed, single.rejected, single.soft_failed, single.deferred, single.failed)
    # 7 + 1 + 3 (HELD, once its holder lets go) confirmed; rejected on the last attempt twice; soft fails 2;
    # deferred: FLAG_OFF's 2 and the paused shop's 1; failed: DRIFTED's 2 uncovered and BIG's one.
    assert counts == (11, 2, 2, 3, 3)
    by_id = {row["id"]: row for row in batched["purchases"]}
    assert sum(1 for row in by_id.values() if row["status"] == "pending" and not row["pushed"]) == 3
    assert [w["reason"] for w in business_warnings].count("balance_would_go_negative") == 4  # 2 per run


async def test_a_wallet_held_past_the_lock_bound_leaves_its_purchases_due(databases, settings):
    one_by_one, single = await _run(databases, settings, batch_size=1, hold_through=True)
    started = time.monotonic()
    batched, batches = await _run(databases, settings, batch_size=4, hold_through=True)
    assert time.monotonic() - started < 10  # waits of 200 ms, not a stall
    assert batched == one_by_one
    assert (batches.confirmed, batches.failed) == (single.confirmed, single.failed) == (8, 6)
    held = [r for r in batched["purchases"] if r["status"] == "pending" and not r["pushed"]]
    assert len(held) == 6 and all(r["verification_attempts"] in (0,) for r in held)
    wallets = {row["user_id"]: row for row in batched["wallets"]}
    assert (wallets[HELD]["pending_balance"], wallets[HELD]["available_balance"]) == (9, 0)


async def test_a_failing_batch_goes_one_at_a_time_to_the_same_rows(databases, settings, monkeypatch):
    one_by_one, single = await _run(databases, settings, batch_size=1)

    async def broken(*args, **kwargs):
        raise RuntimeError("a batch statement failed")

    monkeypatch.setattr(verification, "apply_verification", broken)
    batched, batches = await _run(databases, settings, batch_size=4, batches_fail=True)
    assert batched == one_by_one
    assert (batches.confirmed, batches.deferred, batches.failed) == (single.confirmed, single.deferred, single.failed)


async def test_the_recount_agrees_after_batches(databases, settings):
    outcome, _ = await _run(databases, settings, batch_size=3)
    wallets = {row["user_id"]: row for row in outcome["wallets"]}
    assert wallets[HELD]["pending_balance"] == 0 and wallets[HELD]["available_balance"] == 9
    assert wallets[DRIFTED]["pending_balance"] == 0 and wallets[DRIFTED]["available_balance"] == 4
    confirmed = [r for r in outcome["audit"] if r["action"] == "PURCHASE_CONFIRMED"]
    assert len(confirmed) == 11 and all(r["actor_type"] == "system" and r["actor_id"] is None for r in confirmed)


SPREAD_SQL = """
INSERT INTO users (id, email, hashed_password, role)
SELECT ('00000000-0000-0000-0002-' || lpad(to_hex(u), 12, '0'))::uuid, 'spread' || u || '@e.test', 'x', 'user'
FROM generate_series(1, 20) AS u;
INSERT INTO wallets (user_id) SELECT id FROM users;
INSERT INTO merchants (id, name, default_cashback_percentage) VALUES ($1::uuid, 'Spread shop', 5);
INSERT INTO offers (id, merchant_id, percentage, start_date, end_date, monthly_cap_per_user)
VALUES ($1::uuid, $1::uuid, 5, current_date - 1, current_date + 30, 100000);
"""
SPREAD_PURCHASES_SQL = """
WITH made AS (
    INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount,
                           created_at, next_verification_at)
    SELECT 'spread-' || i, ('00000000-0000-0000-0002-' || lpad(to_hex(1 + i % 20), 12, '0'))::uuid,
           $1::uuid, $1::uuid, 20.00, 'EUR', 1.00, now() - make_interval(secs => (600 - i) * 0.001), now()
    FROM generate_series(1, 600) AS i
    RETURNING id, user_id, cashback_amount
)
INSERT INTO cashback_transactions (user_id, purchase_id, amount, status)
SELECT user_id, id, cashback_amount, 'pending' FROM made;
UPDATE wallets SET pending_balance = 30.00;
"""


async def test_two_runners_at_once_settle_each_purchase_once(databases, settings):
    name = databases.create("race")
    url = databases.url(name)
    conn = await asyncpg.connect(**parse_database_url(url))
    try:
        await conn.execute(SPREAD_SQL.replace("$1::uuid", f"'{OK_SHOP}'::uuid"))
        await conn.execute(SPREAD_PURCHASES_SQL.replace("$1::uuid", f"'{OK_SHOP}'::uuid"))
        await db.init_db(url, 1, 6, slow_query_ms=10_000)
        try:
            job_settings = replace(settings, database_url=url, purchase_job_batch_size=25)
            first, second = await asyncio.wait_for(
                asyncio.gather(verification.run_tick(job_settings), verification.run_tick(job_settings)), 60
            )
        finally:
            await db.close_db()
        assert first.confirmed > 0 and second.confirmed > 0  # both really ran batches
        assert first.confirmed + second.confirmed == 600 and first.failed + second.failed == 0
        per_purchase = await conn.fetch(
            "SELECT p.status, count(a.id) AS audits FROM purchases p "
            "LEFT JOIN audit_logs a ON a.resource_id = p.id GROUP BY p.id, p.status"
        )
        assert {(r["status"], r["audits"]) for r in per_purchase} == {("confirmed", 1)}
        assert await find_mismatches(conn) == []
        assert await conn.fetchval("SELECT sum(available_balance) FROM wallets") == 600
    finally:
        await conn.close()
        databases.drop(name)

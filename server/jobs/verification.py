"""The background purchase-verification job (API.md §4.7). One tick processes what is due.

A tick claims due purchases in batches, oldest first, each batch in one transaction with FOR UPDATE
SKIP LOCKED, so any number of processes on any number of hosts can tick at once and a purchase is
never processed twice; the claim re-reads the status under the lock, so an admin who confirmed or
reversed it first wins. Each purchase is decided as before (flags, then the bank, then the attempts)
and the batch is settled in set-based statements (docs/adr/0032-verification-in-batches.md). A
purchase the batch cannot settle safely (its wallet held by a request past the lock bound, missing,
or not covering it) goes through the one-at-a-time path after the batches, which reports the broken
ones as before. Due times are compared on the database clock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from server import db
from server.config import Settings
from server.errors import DATABASE_UNREACHABLE
from server.flags.service import resolve, resolve_many
from server.purchases.models import Purchase
from server.purchases.transitions import apply_confirmation, apply_rejection, apply_verification
from server.wallets import balances
from server.wallets.balances import BALANCE_LIMIT, NOW

AUTO_CONFIRM_FLAG = "purchase_auto_confirm"


# A batch's size (PURCHASE_JOB_BATCH_SIZE) bounds its transaction (locks held, statement time) and
# the event-loop time its Python part takes between awaits; after each batch the job pauses for
# PAUSE_SHARE of the batch's own time, so the API's requests get the CPU and the pool between batches
# (its effect on the API's p99 under the mix was within the shared machine's noise: ADR 0032).
PAUSE_SHARE = 0.1


# Work due when this tick started. Purchases deferred by this tick move past the tick start, and
# ones whose transaction failed are skipped, so a tick always ends. One at a time, the claim takes
# the first due purchase; in batches, the next `size` after the last one claimed, so no claim re-reads
# or re-sorts what an earlier one passed (ix_purchases_created or ix_purchases_status_created give the
# order: docs/adr/0032-verification-in-batches.md).
def _claim(tx: BaseDBAsyncClient, started: datetime, skip: list[Any], only: list[Any] | None = None):
    due = Purchase.filter(status="pending", next_verification_at__lte=started)
    if only is not None:
        due = due.filter(id__in=only)
    if skip:
        due = due.exclude(id__in=skip)
    return due.order_by("created_at", "id").limit(1).select_for_update(skip_locked=True).using_db(tx).first()


def _claim_batch(tx: BaseDBAsyncClient, started: datetime, after: tuple[datetime, Any] | None, size: int):
    due = Purchase.filter(status="pending", next_verification_at__lte=started)
    if after is not None:
        created_at, last_id = after
        due = due.filter(Q(created_at__gt=created_at) | Q(id__gt=last_id), created_at__gte=created_at)
    return due.order_by("created_at", "id").limit(size).select_for_update(skip_locked=True).using_db(tx)


# Errors that mean the database itself is unreachable or going away (shutdown, crash, dropped):
# the tick stops and the runner tries again on the next one. Any InterfaceError counts here too: a
# connection the pool handed out in a broken state ends the tick, not the runner.
CONNECTION_ERRORS = (*DATABASE_UNREACHABLE, asyncpg.InterfaceError)


def rejection_reason(attempts: int) -> str:
    return f"Bank reconciliation failed: no matching bank movement found after {attempts} verification attempt(s)."


def bank_matches(purchase: Purchase, settings: Settings) -> bool:
    """The simulated bank: every purchase matches except those of REJECTION_MERCHANT_ID."""
    return not (settings.rejection_merchant_id and str(purchase.merchant_id) == settings.rejection_merchant_id)


async def is_eligible(tx: BaseDBAsyncClient, purchase: Purchase) -> bool:
    """purchase_auto_confirm must hold for the user and for the merchant (scoped -> global -> true)."""
    user_enabled, _ = await resolve(AUTO_CONFIRM_FLAG, "user", str(purchase.user_id), tx)
    if not user_enabled:
        return False
    merchant_enabled, _ = await resolve(AUTO_CONFIRM_FLAG, "merchant", str(purchase.merchant_id), tx)
    return merchant_enabled


@dataclass
class TickResult:
    confirmed: int = 0
    rejected: int = 0
    soft_failed: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def processed(self) -> int:
        return self.confirmed + self.rejected + self.soft_failed + self.deferred


async def _process_one(
    settings: Settings,
    started: datetime,
    next_due: datetime,
    skip: list[Any],
    result: TickResult,
    only: list[Any] | None = None,
) -> bool:
    """Claim and settle one due purchase (of `only`, if given) in one transaction; False when nothing
    is due."""
    claimed_id = None
    try:
        async with in_transaction() as tx:
            purchase = await _claim(tx, started, skip, only)
            if purchase is None:
                return False
            claimed_id = purchase.id
            if purchase.status != "pending":  # re-read under the lock: someone else got there first
                skip.append(claimed_id)
                return True
            this_purchase = Purchase.filter(id=claimed_id).using_db(tx)
            if not await is_eligible(tx, purchase):
                await this_purchase.update(next_verification_at=next_due, updated_at=NOW)
                result.deferred += 1
                return True
            if bank_matches(purchase, settings):
                await apply_confirmation(tx, purchase, actor_type="system", actor_id=None)
                result.confirmed += 1
                return True
            attempts = purchase.verification_attempts + 1
            if attempts >= settings.purchase_max_verification_attempts:
                await apply_rejection(tx, purchase, attempts=attempts, reason=rejection_reason(attempts))
                result.rejected += 1
            else:
                await this_purchase.update(
                    verification_attempts=attempts, next_verification_at=next_due, updated_at=NOW
                )
                result.soft_failed += 1
            return True
    except CONNECTION_ERRORS:
        raise
    except Exception as error:
        if claimed_id is None:
            raise
        # Rolled back: the purchase stays due, no attempt counted; skip it for the rest of this tick.
        skip.append(claimed_id)
        result.failed += 1
        logger.bind(event="job.purchase_failed", purchase_id=str(claimed_id), error=type(error).__name__).opt(
            exception=error
        ).error("verification of a purchase failed: {}", type(error).__name__)
        return True


async def _process_batch(
    settings: Settings,
    started: datetime,
    next_due: datetime,
    after: tuple[datetime, Any] | None,
    result: TickResult,
    size: int,
) -> tuple[tuple[datetime, Any] | None, list[Any]]:
    """Claim the next `size` due purchases after `after` and settle them in one transaction.
    Returns where the claim stopped (None when nothing was due) and the ids left for the
    one-at-a-time path: ones whose wallet another transaction held past the lock bound, or that the
    batch cannot settle as the one-at-a-time path would (no wallet, pending below the cashback, available past
    its limit), and the whole batch when its transaction failed."""
    claimed: list[Purchase] = []
    try:
        async with in_transaction() as tx:
            claimed = list(await _claim_batch(tx, started, after, size))
            if not claimed:
                return None, []
            after = (claimed[-1].created_at, claimed[-1].id)
            counts, left = await _settle_batch(tx, settings, next_due, claimed)
    except CONNECTION_ERRORS:
        raise
    except Exception as error:
        if not claimed:
            raise
        logger.bind(event="job.batch_failed", purchases=len(claimed), error=type(error).__name__).opt(
            exception=error
        ).error("a verification batch failed, its purchases go one at a time: {}", type(error).__name__)
        return (claimed[-1].created_at, claimed[-1].id), [purchase.id for purchase in claimed]
    for name, count in counts.items():
        setattr(result, name, getattr(result, name) + count)
    return after, left


async def _settle_batch(
    tx: BaseDBAsyncClient, settings: Settings, next_due: datetime, claimed: list[Purchase]
) -> tuple[dict[str, int], list[Any]]:
    """Decide each claimed purchase as _process_one does, in claim order, and settle the batch."""
    users = {str(p.user_id) for p in claimed}
    flags = await resolve_many(
        AUTO_CONFIRM_FLAG, {"user": users, "merchant": {str(p.merchant_id) for p in claimed}}, tx
    )
    deferred: list[Any] = []
    soft_failed: list[Any] = []
    to_settle: list[tuple[Purchase, str | None]] = []
    for purchase in claimed:
        if purchase.status != "pending":  # the claim re-read it under the lock; never true here
            continue
        if not (flags[("user", str(purchase.user_id))] and flags[("merchant", str(purchase.merchant_id))]):
            deferred.append(purchase.id)
        elif bank_matches(purchase, settings):
            to_settle.append((purchase, None))
        elif purchase.verification_attempts + 1 >= settings.purchase_max_verification_attempts:
            to_settle.append((purchase, rejection_reason(purchase.verification_attempts + 1)))
        else:
            soft_failed.append(purchase.id)
    wallets = await balances.lock_many(tx, {str(p.user_id) for p, _ in to_settle}) if to_settle else {}
    confirmed: list[Purchase] = []
    rejected: list[tuple[Purchase, str]] = []
    left: list[Any] = []
    for purchase, reason in to_settle:
        wallet = wallets.get(str(purchase.user_id))
        cashback = purchase.cashback_amount
        if wallet is None or wallet.pending_balance < cashback:
            left.append(purchase.id)
            continue
        if reason is None:
            if wallet.available_balance + cashback > BALANCE_LIMIT:
                left.append(purchase.id)
                continue
            wallet.available_balance += cashback
            confirmed.append(purchase)
        else:
            rejected.append((purchase, reason))
        wallet.pending_balance -= cashback
    if deferred:
        await Purchase.filter(id__in=deferred).using_db(tx).update(next_verification_at=next_due, updated_at=NOW)
    if soft_failed:
        await (
            Purchase.filter(id__in=soft_failed)
            .using_db(tx)
            .update(verification_attempts=F("verification_attempts") + 1, next_verification_at=next_due, updated_at=NOW)
        )
    await apply_verification(tx, confirmed, rejected)
    counts = {
        "confirmed": len(confirmed),
        "rejected": len(rejected),
        "soft_failed": len(soft_failed),
        "deferred": len(deferred),
    }
    return counts, left


async def run_tick(settings: Settings) -> TickResult:
    """Process every purchase that was due when the tick started: in batches, then one at a time
    what the batches left; a batch size of 1 processes every purchase one at a time."""
    batch_size = settings.purchase_job_batch_size
    started = await db.fetchval("SELECT now()")
    next_due = started + timedelta(seconds=settings.purchase_confirmation_interval_seconds)
    result, skip = TickResult(), list[Any]()
    if batch_size > 1:
        after: tuple[datetime, Any] | None = None
        left: list[Any] = []
        while True:
            batch_started = time.perf_counter()
            after, batch_left = await _process_batch(settings, started, next_due, after, result, batch_size)
            left += batch_left
            if after is None:
                break
            await asyncio.sleep((time.perf_counter() - batch_started) * PAUSE_SHARE)
        # In slices of a batch's size: after many failed batches, one IN list of every id left would
        # pass PostgreSQL's limit of parameters per statement.
        for first in range(0, len(left), batch_size):
            only = left[first : first + batch_size]
            while await _process_one(settings, started, next_due, skip, result, only=only):
                pass
    else:
        while await _process_one(settings, started, next_due, skip, result):
            pass
    if result.processed or result.failed:
        logger.bind(
            event="job.tick",
            confirmed=result.confirmed,
            rejected=result.rejected,
            soft_failed=result.soft_failed,
            deferred=result.deferred,
            failed=result.failed,
        ).info("verification tick settled {} purchase(s)", result.processed)
    return result


async def tick(settings: Settings) -> int:
    """Process every due purchase; returns how many were processed."""
    return (await run_tick(settings)).processed

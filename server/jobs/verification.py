"""The background purchase-verification job (API.md §4.7). One tick processes what is due.

Each purchase is claimed in its own transaction with FOR UPDATE SKIP LOCKED, so any number of
processes on any number of hosts can tick at once and a purchase is never processed twice; the
status is re-read under the lock, so an admin who confirmed or reversed it first wins. Due times
are compared on the database clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from server import db
from server.config import Settings
from server.flags.service import resolve
from server.purchases.models import Purchase
from server.purchases.transitions import apply_confirmation, apply_rejection
from server.wallets.balances import NOW

AUTO_CONFIRM_FLAG = "purchase_auto_confirm"


# Work due when this tick started. Purchases deferred by this tick move past the tick start, and
# ones whose transaction failed are skipped, so a tick always ends. The claim is a queryset (FOR
# UPDATE SKIP LOCKED): the job's throughput is bounded by its one purchase per transaction, not by
# building the statement.
def _claim(tx: BaseDBAsyncClient, started: datetime, skip: list[Any]):
    due = Purchase.filter(status="pending", next_verification_at__lte=started)
    if skip:
        due = due.exclude(id__in=skip)
    return due.order_by("created_at", "id").limit(1).select_for_update(skip_locked=True).using_db(tx).first()


# Errors that mean the database itself is unreachable or going away (shutdown, crash, dropped):
# the tick stops and the runner tries again on the next one.
CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    ConnectionError,
)


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
    settings: Settings, started: datetime, next_due: datetime, skip: list[Any], result: TickResult
) -> bool:
    """Claim and settle one due purchase in one transaction; False when nothing is due."""
    claimed_id = None
    try:
        async with in_transaction() as tx:
            purchase = await _claim(tx, started, skip)
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


async def run_tick(settings: Settings) -> TickResult:
    """Process every purchase that was due when the tick started."""
    started = await db.fetchval("SELECT now()")
    next_due = started + timedelta(seconds=settings.purchase_confirmation_interval_seconds)
    result, skip = TickResult(), list[Any]()
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

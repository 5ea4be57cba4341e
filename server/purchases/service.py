"""Purchases: ingestion with the monthly cap, reads, and the state transitions of API.md §4.4/§4.5.

The transitions (confirm, reject, reverse) are implemented once here and used by the admin
endpoints and by the verification job alike. Every one runs inside the caller's transaction,
after the purchase row is locked and its status re-read, and locks the owner's wallet
(purchase first, then wallet; never two wallets); the balances move through server/wallets/balances.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg
from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from server import db
from server.audit.service import record as audit
from server.errors import ApiError, balance_limit_exceeded, forbidden, not_found
from server.http import money
from server.pagination import Filters, fetch_page
from server.purchases.models import CashbackTransaction, Purchase
from server.wallets import balances
from server.wallets.balances import NOW
from server.wallets.models import Wallet

STATUSES = ("pending", "confirmed", "rejected", "reversed")
REVERSIBLE_FROM = ["pending", "confirmed"]

PURCHASE_COLUMNS = (
    "p.id, p.external_id, p.user_id, p.merchant_id, m.name AS merchant_name, p.offer_id, p.amount, "
    "p.currency, p.status, p.cashback_amount, t.status AS cashback_status, p.created_at"
)
PURCHASE_SOURCE = (
    "purchases p JOIN merchants m ON m.id = p.merchant_id LEFT JOIN cashback_transactions t ON t.purchase_id = p.id"
)
# One purchase's details: a queryset with the same fields (no bench row reads a single purchase).
DETAIL_FIELDS = "id external_id user_id merchant_id offer_id amount currency status cashback_amount created_at".split()

# Ingestion is one statement, one round trip after authentication: record_purchase()
# (server/purchases/sql/record_purchase.sql, reading the month's running total) takes the caller's wallet lock,
# reads in a fresh snapshot after it, applies checks 3-7, computes the cashback with the cap and
# writes, all inside PostgreSQL, so the lock is never held across the network. It answers with an
# outcome; the rules live there, the messages and warnings here.
# Raw SQL kept for bench row purchase_ingest (docs/adr/0003-ingestion-inside-postgresql.md).
RECORD_PURCHASE_SQL = "SELECT * FROM record_purchase($1, $2, $3, $4, $5)"


class WalletInvariantError(RuntimeError):
    """A movement would take a balance below zero although the rules say it cannot: the wallet
    no longer matches its transactions. Logged as a business warning; the transaction rolls back."""


def warn(reason: str, message: str, **context: Any) -> None:
    """A business warning (operation-plan §4.1); context carries ids and amounts, never secrets."""
    logger.bind(event="business.warning", reason=reason, **context).warning(message)


# -- rendering ------------------------------------------------------------------------------
def purchase_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "external_id": row["external_id"],
        "user_id": str(row["user_id"]),
        "merchant_id": str(row["merchant_id"]),
        "merchant_name": row["merchant_name"],
        "offer_id": str(row["offer_id"]),
        "amount": money(row["amount"]),
        "currency": row["currency"].strip(),
        "status": row["status"],
        "cashback_amount": money(row["cashback_amount"]),
        "cashback_status": row["cashback_status"],
        "created_at": row["created_at"],
    }


def invalid_status(value: str) -> ApiError:
    return ApiError(
        422,
        "INVALID_PURCHASE_STATUS",
        f"'{value}' is not a valid purchase status. Allowed values: {', '.join(STATUSES)}.",
        {"allowed_values": list(STATUSES)},
    )


# -- ingestion --------------------------------------------------------------------------------
def duplicate_error(external_id: str, existing: Mapping[str, Any] | None, caller_id: str) -> ApiError:
    """The 409 never reveals another user's purchase: only the caller's own gets the details."""
    details: dict[str, Any] = {"external_id": external_id}
    if existing is not None and str(existing["user_id"]) == caller_id:
        details.update(
            {
                "purchase_id": str(existing["id"]),
                "previously_created_at": existing["created_at"],
                "previously_processed_amount": money(existing["amount"]),
                "action": "The purchase was already recorded (purchase_id); nothing was recorded again, and a retry gets this same 409.",
            }
        )
    return ApiError(
        409, "DUPLICATE_PURCHASE", f"A purchase with external ID '{external_id}' has already been processed.", details
    )


def user_not_eligible(user_id: str) -> ApiError:
    return ApiError(
        422,
        "USER_NOT_ELIGIBLE",
        "User is not eligible to ingest purchases.",
        {
            "user_id": user_id,
            "reason": "Purchase cannot be ingested for users who are non-existent or inactive.",
        },
    )


def merchant_not_eligible(merchant_id: str) -> ApiError:
    return ApiError(
        422,
        "MERCHANT_NOT_ELIGIBLE",
        "Merchant is not eligible to process purchases.",
        {
            "merchant_id": merchant_id,
            "reason": "Purchases cannot be processed for merchants who are non-existent or inactive.",
        },
    )


def offer_not_available(merchant_id: str) -> ApiError:
    return ApiError(
        422,
        "OFFER_NOT_AVAILABLE",
        f"No active offer is available for merchant '{merchant_id}'.",
        {
            "merchant_id": merchant_id,
            "reason": "Purchases cannot be processed without a valid active offer for the merchant.",
        },
    )


def unsupported_currency(currency: str) -> ApiError:
    return ApiError(
        422,
        "UNSUPPORTED_CURRENCY",
        f"Currency '{currency}' is not supported. Only EUR is accepted at this time.",
        {"currency": currency, "reason": "The platform currently processes purchases in EUR only."},
    )


def _refusal(found: asyncpg.Record, caller_id: str, external_id: str, merchant_id: str, currency: str) -> ApiError:
    """The error of the check record_purchase() stopped at, with the business warning it logs."""
    outcome = found["outcome"]
    if outcome == "duplicate":
        return duplicate_error(
            external_id,
            {
                "id": found["duplicate_id"],
                "user_id": found["duplicate_user_id"],
                "created_at": found["duplicate_created_at"],
                "amount": found["duplicate_amount"],
            },
            caller_id,
        )
    if outcome == "currency":
        return unsupported_currency(currency)
    if outcome == "user":
        return user_not_eligible(caller_id)
    if outcome == "merchant":
        return merchant_not_eligible(merchant_id)
    if outcome == "offer_missing":
        warn(
            "offer_unavailable",
            "purchase attempted for a merchant without an active offer",
            merchant_id=merchant_id,
            user_id=caller_id,
        )
        return offer_not_available(merchant_id)
    if outcome in ("offer_expired", "offer_not_started"):
        warn(
            outcome,
            "purchase attempted on an offer outside its validity window",
            merchant_id=merchant_id,
            offer_id=str(found["active_offer_id"]),
            user_id=caller_id,
            start_date=str(found["offer_start_date"]),
            end_date=str(found["offer_end_date"]),
        )
        return offer_not_available(merchant_id)
    raise RuntimeError(f"record_purchase answered an unknown outcome {outcome!r}")


async def ingest(caller_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /purchases after the schema and the ownership check: checks 3-7, then the effect,
    in one statement (record_purchase, migrations 3 and 4)."""
    external_id, merchant_id, currency = body["external_id"], body["merchant_id"], body["currency"]
    try:
        found = await db.fetchrow(RECORD_PURCHASE_SQL, caller_id, external_id, merchant_id, body["amount"], currency)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != "uq_purchases_external_id":
            raise
        # A concurrent request of another user committed the same external_id first (the function's
        # insert waited for it, then failed; its transaction rolled back): answer like check 3.
        existing = (
            await Purchase.filter(external_id=external_id).first().values("id", "user_id", "created_at", "amount")
        )
        raise duplicate_error(external_id, existing, caller_id) from None
    except asyncpg.NumericValueOutOfRangeError:
        # The cashback would overflow the pending balance; the statement rolled back.
        raise balance_limit_exceeded("pending", {"user_id": caller_id, "external_id": external_id}) from None
    if found is None:  # the function returns one row, always
        raise RuntimeError("record_purchase returned no row")
    if found["outcome"] != "recorded":
        raise _refusal(found, caller_id, external_id, merchant_id, currency.upper())
    return {"id": str(found["new_purchase_id"]), "status": "pending", "cashback_amount": money(found["credited"])}


# -- reads ------------------------------------------------------------------------------------
async def list_purchases(
    *,
    offset: int,
    limit: int,
    status: str | None = None,
    user_id: str | None = None,
    merchant_id: str | None = None,
    start_date=None,
    end_date=None,
) -> tuple[list, int]:
    filters = Filters()
    if status is not None:
        filters.add("p.status = {}", status)
    if user_id is not None:
        filters.add("p.user_id = {}", user_id)
    if merchant_id is not None:
        filters.add("p.merchant_id = {}", merchant_id)
    if start_date is not None:
        filters.add("p.created_at >= ({}::date)::timestamp AT TIME ZONE 'UTC'", start_date)
    if end_date is not None:
        filters.add("p.created_at < ({}::date + 1)::timestamp AT TIME ZONE 'UTC'", end_date)
    rows, total = await fetch_page(
        source=PURCHASE_SOURCE,
        columns=PURCHASE_COLUMNS,
        filters=filters,
        order_by="p.created_at DESC, p.id DESC",
        offset=offset,
        limit=limit,
    )
    return [purchase_out(row) for row in rows], total


async def get_purchase(purchase_id: str, caller_id: str, caller_is_admin: bool) -> dict[str, Any]:
    row = await (
        Purchase.filter(id=purchase_id)
        .first()
        .values(*DETAIL_FIELDS, merchant_name="merchant__name", cashback_status="cashback_transaction__status")
    )
    if row is None:
        raise not_found("purchase", purchase_id)
    if not caller_is_admin and str(row["user_id"]) != caller_id:
        raise forbidden(
            "You do not have permission to view this purchase. Purchase belongs to another user.",
            {"purchase_id": purchase_id},
        )
    return purchase_out(row)


# -- transitions (inside the caller's transaction, purchase row already locked) -----------------
async def lock_purchase(tx: BaseDBAsyncClient, purchase_id: Any) -> Purchase | None:
    return await Purchase.filter(id=purchase_id).select_for_update().using_db(tx).first()


async def _lock_wallet(tx: BaseDBAsyncClient, user_id: Any) -> Wallet:
    wallet = await balances.lock(tx, user_id)
    if wallet is None:
        warn("wallet_missing", "a purchase's owner has no wallet", user_id=str(user_id))
        raise WalletInvariantError(f"no wallet for user {user_id}")
    return wallet


def _require_pending_covers(wallet: Wallet, purchase: Purchase, action: str) -> None:
    if wallet.pending_balance < purchase.cashback_amount:
        warn(
            "balance_would_go_negative",
            f"{action} would take the pending balance below zero",
            user_id=str(purchase.user_id),
            purchase_id=str(purchase.id),
            pending_balance=money(wallet.pending_balance),
            cashback_amount=money(purchase.cashback_amount),
        )
        raise WalletInvariantError(f"pending balance of user {purchase.user_id} is below the cashback")


def _purchase_details(purchase: Purchase) -> dict[str, Any]:
    return {
        "merchant_id": str(purchase.merchant_id),
        "amount": money(purchase.amount),
        "currency": purchase.currency.strip(),
        "cashback_amount": money(purchase.cashback_amount),
    }


async def _settle(tx: BaseDBAsyncClient, purchase: Purchase, transaction_status: str, **changes: Any) -> None:
    """The purchase's new state and its cashback transaction's, stamped with the database clock."""
    await Purchase.filter(id=purchase.id).using_db(tx).update(**changes, updated_at=NOW)
    await (
        CashbackTransaction.filter(purchase_id=purchase.id)
        .using_db(tx)
        .update(status=transaction_status, updated_at=NOW)
    )


async def apply_confirmation(
    tx: BaseDBAsyncClient, purchase: Purchase, *, actor_type: str, actor_id: str | None
) -> None:
    """pending -> confirmed: pending -c, available +c, transaction available (even for 0.00)."""
    wallet = await _lock_wallet(tx, purchase.user_id)
    _require_pending_covers(wallet, purchase, "confirmation")
    await _settle(tx, purchase, "available", status="confirmed")
    await balances.confirm(tx, purchase.user_id, purchase.cashback_amount)
    await audit(
        tx,
        actor_type=actor_type,
        actor_id=actor_id,
        action="PURCHASE_CONFIRMED" if actor_type == "system" else "PURCHASE_CONFIRMED_BY_ADMIN",
        resource_type="purchase",
        resource_id=purchase.id,
        details=_purchase_details(purchase),
    )


async def apply_rejection(tx: BaseDBAsyncClient, purchase: Purchase, *, attempts: int, reason: str) -> None:
    """pending -> rejected (job only): pending -c, transaction reversed, the purchase keeps c."""
    wallet = await _lock_wallet(tx, purchase.user_id)
    _require_pending_covers(wallet, purchase, "rejection")
    await _settle(tx, purchase, "reversed", status="rejected", verification_attempts=attempts)
    await balances.reject(tx, purchase.user_id, purchase.cashback_amount)
    await audit(
        tx,
        actor_type="system",
        actor_id=None,
        action="PURCHASE_REJECTED",
        resource_type="purchase",
        resource_id=purchase.id,
        details={**_purchase_details(purchase), "reason": reason, "attempts": attempts},
    )


def _pending_shortfall(purchase_id: str, purchase: Purchase) -> ApiError:
    """A drifted wallet (API.md §4.5) under an admin transition: a documented 409 and nothing moved,
    never a 500."""
    return ApiError(
        409,
        "INSUFFICIENT_BALANCE",
        "The wallet's pending balance does not cover this purchase's cashback. "
        "Run the wallet consistency check (clicknback-ops check-wallets).",
        {"purchase_id": purchase_id, "requested_amount": money(purchase.cashback_amount)},
    )


def _not_pending(purchase_id: str, current: str) -> ApiError:
    return ApiError(
        400,
        "PURCHASE_NOT_PENDING",
        f"Cannot confirm purchase '{purchase_id}'. Purchase status is '{current}', not 'pending'.",
        {"purchase_id": purchase_id, "current_status": current, "required_status": "pending"},
    )


async def confirm_by_admin(purchase_id: str, admin_id: str) -> dict[str, Any]:
    """POST /purchases/{id}/confirmation: 404 -> lock -> 400 unless pending -> confirm."""
    async with in_transaction() as tx:
        purchase = await lock_purchase(tx, purchase_id)
        if purchase is None:
            raise not_found("purchase", purchase_id)
        if purchase.status != "pending":
            raise _not_pending(purchase_id, purchase.status)
        try:
            await apply_confirmation(tx, purchase, actor_type="admin", actor_id=admin_id)
        except WalletInvariantError:
            raise _pending_shortfall(purchase_id, purchase) from None
        except balances.BalanceLimitExceeded as error:
            raise balance_limit_exceeded(error.balance, {"purchase_id": purchase_id}) from None
    return {"id": purchase_id, "status": "confirmed", "cashback_amount": money(purchase.cashback_amount)}


async def reverse_by_admin(purchase_id: str, admin_id: str) -> dict[str, Any]:
    """PATCH /purchases/{id}/reverse: 404 -> lock -> 400 when terminal -> 409 if available < c."""
    async with in_transaction() as tx:
        purchase = await lock_purchase(tx, purchase_id)
        if purchase is None:
            raise not_found("purchase", purchase_id)
        status = purchase.status
        details = {"purchase_id": purchase_id, "current_status": status, "reversible_from_statuses": REVERSIBLE_FROM}
        if status == "reversed":
            raise ApiError(
                400,
                "PURCHASE_ALREADY_REVERSED",
                f"Cannot reverse purchase '{purchase_id}'. Purchase is already reversed.",
                details,
            )
        if status == "rejected":
            raise ApiError(
                400,
                "PURCHASE_NOT_REVERSIBLE",
                f"Cannot reverse purchase '{purchase_id}'. Rejected purchases cannot be reversed.",
                details,
            )
        cashback = purchase.cashback_amount
        wallet = await _lock_wallet(tx, purchase.user_id)
        if status == "confirmed" and wallet.available_balance < cashback:
            warn(
                "balance_would_go_negative",
                "reversal would take the available balance below zero",
                user_id=str(purchase.user_id),
                purchase_id=purchase_id,
                available_balance=money(wallet.available_balance),
                cashback_amount=money(cashback),
            )
            raise ApiError(
                409,
                "INSUFFICIENT_BALANCE",
                "Insufficient available balance to reverse this purchase.",
                {
                    "purchase_id": purchase_id,
                    "requested_amount": money(cashback),
                    "available_balance": money(wallet.available_balance),
                },
            )
        if status == "pending":
            try:
                _require_pending_covers(wallet, purchase, "reversal")
            except WalletInvariantError:
                raise _pending_shortfall(purchase_id, purchase) from None
        await _settle(tx, purchase, "reversed", status="reversed", cashback_amount=Decimal("0"))
        await balances.reverse(tx, purchase.user_id, cashback, status)
        await audit(
            tx,
            actor_type="admin",
            actor_id=admin_id,
            action="PURCHASE_REVERSED",
            resource_type="purchase",
            resource_id=purchase.id,
            details={"prior_status": status, "reversed_cashback_amount": money(cashback)},
        )
    return {"id": purchase_id, "status": "reversed", "cashback_amount": money(Decimal("0"))}

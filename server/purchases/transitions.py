"""The state transitions of API.md §4.4/§4.5: confirm, reject, reverse.

Implemented once here and used by the admin endpoints and by the verification job alike. Every one
runs inside the caller's transaction, after the purchase row is locked and its status re-read, and
locks the owner's wallet (purchase first, then wallet; never two wallets); the balances move through
server/wallets/balances.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from server.audit.service import record as audit
from server.audit.service import record_many as audit_many
from server.errors import ApiError, balance_limit_exceeded, not_found
from server.http import money
from server.purchases.models import CashbackTransaction, Purchase
from server.purchases.service import REVERSIBLE_FROM, WalletInvariantError, warn
from server.wallets import balances
from server.wallets.balances import NOW
from server.wallets.models import Wallet


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


async def apply_verification(
    tx: BaseDBAsyncClient, confirmed: list[Purchase], rejected: list[tuple[Purchase, str]]
) -> None:
    """apply_confirmation (as the system) and apply_rejection for a batch of the verification job, in
    set-based statements: the same purchase, transaction, wallet and audit rows as one at a time.
    The caller holds every purchase's lock and its owner's wallet lock (balances.lock_many), and
    checked that each wallet covers the batch's cashback in claim order; a rejected purchase's attempts
    are its verification_attempts + 1, and its (purchase, reason) pairs carry the reason."""
    moves: dict[str, tuple[Decimal, Decimal]] = {}
    for purchase in confirmed:
        out, into = moves.get(str(purchase.user_id), (Decimal("0"), Decimal("0")))
        moves[str(purchase.user_id)] = (out + purchase.cashback_amount, into + purchase.cashback_amount)
    for purchase, _ in rejected:
        out, into = moves.get(str(purchase.user_id), (Decimal("0"), Decimal("0")))
        moves[str(purchase.user_id)] = (out + purchase.cashback_amount, into)
    if confirmed:
        ids = [purchase.id for purchase in confirmed]
        await Purchase.filter(id__in=ids).using_db(tx).update(status="confirmed", updated_at=NOW)
        await CashbackTransaction.filter(purchase_id__in=ids).using_db(tx).update(status="available", updated_at=NOW)
    if rejected:
        ids = [purchase.id for purchase, _ in rejected]
        await (
            Purchase.filter(id__in=ids)
            .using_db(tx)
            .update(status="rejected", verification_attempts=F("verification_attempts") + 1, updated_at=NOW)
        )
        await CashbackTransaction.filter(purchase_id__in=ids).using_db(tx).update(status="reversed", updated_at=NOW)
    await balances.settle_verified(tx, moves)
    rows = [_system_audit("PURCHASE_CONFIRMED", purchase, _purchase_details(purchase)) for purchase in confirmed]
    for purchase, reason in rejected:
        attempts = purchase.verification_attempts + 1
        details = {**_purchase_details(purchase), "reason": reason, "attempts": attempts}
        rows.append(_system_audit("PURCHASE_REJECTED", purchase, details))
    await audit_many(tx, rows)


def _system_audit(action: str, purchase: Purchase, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "actor_type": "system",
        "actor_id": None,
        "action": action,
        "resource_type": "purchase",
        "resource_id": purchase.id,
        "details": details,
    }


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

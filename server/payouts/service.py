"""Payouts (API.md §3.7, §4.5): request against the available balance, then complete or fail.

Lock order: the owner's wallet first, then the payout row; one wallet per transaction. Querysets
throughout; the balances move through server/wallets/balances.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.audit.service import record as audit
from server.errors import ApiError, balance_limit_exceeded, not_found
from server.http import money
from server.pagination import page_of
from server.payouts.models import Payout
from server.purchases.service import warn
from server.wallets import balances
from server.wallets.balances import NOW

PAYOUT_FIELDS = ("id", "user_id", "amount", "status", "requested_at", "processed_at", "external_reference")
STATUSES = ("requested", "completed", "failed")


def payout_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "user_id": str(row["user_id"]),
        "amount": money(row["amount"]),
        "status": row["status"],
        "requested_at": row["requested_at"],
        "processed_at": row["processed_at"],
        "external_reference": row["external_reference"],
    }


def already_requested(payout_id: Any) -> ApiError:
    return ApiError(
        409,
        "PAYOUT_ALREADY_REQUESTED",
        "A payout request is already awaiting processing.",
        {"payout_id": str(payout_id) if payout_id is not None else None},
    )


def _row(payout: Payout) -> dict[str, Any]:
    return {name: getattr(payout, name) for name in PAYOUT_FIELDS}


async def _open_payout_id(user_id: Any, tx: BaseDBAsyncClient | None = None) -> Any:
    return await Payout.filter(user_id=user_id, status="requested").using_db(tx).first().values_list("id", flat=True)


async def request_payout(user_id: str, amount: Decimal) -> dict[str, Any]:
    """POST /users/me/payouts, after the schema and minimum checks: lock -> one open -> balance."""
    try:
        async with in_transaction() as tx:
            wallet = await balances.lock(tx, user_id)
            # Read after the lock (a fresh snapshot), so a request committed meanwhile is seen.
            open_id = await _open_payout_id(user_id, tx)
            if open_id is not None:
                raise already_requested(open_id)
            available = wallet.available_balance if wallet is not None else Decimal("0")
            if amount > available:
                warn(
                    "balance_would_go_negative",
                    "payout request exceeds the available balance",
                    user_id=user_id,
                    requested_amount=money(amount),
                    available_balance=money(available),
                )
                raise ApiError(
                    409,
                    "INSUFFICIENT_BALANCE",
                    "Insufficient available balance for this payout.",
                    {"requested_amount": money(amount), "available_balance": money(available)},
                )
            payout = await Payout.create(using_db=tx, user_id=user_id, amount=amount)
            await balances.reserve_payout(tx, user_id, amount)
            await audit(
                tx,
                actor_type="user",
                actor_id=user_id,
                action="PAYOUT_REQUESTED",
                resource_type="payout",
                resource_id=payout.id,
                details={"amount": money(amount), "available_balance_after": money(available - amount)},
            )
    except IntegrityError as error:
        if getattr(error.__cause__, "constraint_name", None) != "uq_payouts_one_requested":
            raise
        raise already_requested(await _open_payout_id(user_id)) from None
    return payout_out(_row(payout))


async def list_payouts(
    *, offset: int, limit: int, status: str | None = None, user_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    given = {name: value for name, value in (("status", status), ("user_id", user_id)) if value is not None}
    rows, total = await page_of(
        Payout.filter(**given),
        fields=PAYOUT_FIELDS,
        order_by=("-requested_at", "-id"),
        offset=offset,
        limit=limit,
    )
    return [payout_out(row) for row in rows], total


async def process_payout(payout_id: str, admin_id: str, status: str, external_reference: str | None) -> dict[str, Any]:
    """PATCH /payouts/{id}: 404 -> lock the owner's wallet, then the payout -> 400 unless requested."""
    owner = await Payout.filter(id=payout_id).first().values_list("user_id", flat=True)
    if owner is None:
        raise not_found("payout", payout_id)
    async with in_transaction() as tx:
        await balances.lock(tx, owner)
        this_payout = Payout.filter(id=payout_id).using_db(tx)
        payout = await this_payout.select_for_update().get()
        if payout.status != "requested":
            raise ApiError(
                400,
                "INVALID_PAYOUT_TRANSITION",
                f"Cannot change payout '{payout_id}' from '{payout.status}' to '{status}'.",
                {
                    "payout_id": payout_id,
                    "current_status": payout.status,
                    "requested_status": status,
                    "allowed_from": ["requested"],
                },
            )
        await this_payout.update(
            status=status, processed_at=NOW, processed_by_id=admin_id, external_reference=external_reference
        )
        try:
            if status == "completed":
                await balances.complete_payout(tx, owner, payout.amount)
            else:
                await balances.fail_payout(tx, owner, payout.amount)
        except balances.BalanceLimitExceeded as error:
            raise balance_limit_exceeded(error.balance, {"payout_id": payout_id}) from None
        await audit(
            tx,
            actor_type="admin",
            actor_id=admin_id,
            action="PAYOUT_COMPLETED" if status == "completed" else "PAYOUT_FAILED",
            resource_type="payout",
            resource_id=payout.id,
            details={
                "user_id": str(owner),
                "amount": money(payout.amount),
                "external_reference": external_reference,
            },
        )
        processed = await this_payout.get()
    return payout_out(_row(processed))

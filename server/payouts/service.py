"""Payouts (API.md §3.7, §4.5): request against the available balance, then complete or fail.

Lock order: the owner's wallet first, then the payout row; one wallet per transaction.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from server import db
from server.audit.service import record as audit
from server.errors import ApiError, balance_limit_exceeded, not_found
from server.http import money
from server.pagination import Filters, fetch_page
from server.purchases.service import warn
from server.wallets import balances

PAYOUT_COLUMNS = "id, user_id, amount, status, requested_at, processed_at, external_reference"
STATUSES = ("requested", "completed", "failed")

REQUEST_SQL = f"""
INSERT INTO payouts (id, user_id, amount, status) VALUES ($1, $2, $3, 'requested') RETURNING {PAYOUT_COLUMNS}
"""

PROCESS_SQL = f"""
UPDATE payouts SET status = $2, processed_at = now(), processed_by = $3, external_reference = $4
WHERE id = $1
RETURNING {PAYOUT_COLUMNS}
"""


def payout_out(row: asyncpg.Record) -> dict[str, Any]:
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


async def request_payout(user_id: str, amount: Decimal) -> dict[str, Any]:
    """POST /users/me/payouts, after the schema and minimum checks: lock -> one open -> balance."""
    try:
        async with db.transaction() as conn:
            wallet = await balances.lock(conn, user_id)
            # Read after the lock (a fresh snapshot), so a request committed meanwhile is seen.
            open_id = await conn.fetchval("SELECT id FROM payouts WHERE user_id = $1 AND status = 'requested'", user_id)
            if open_id is not None:
                raise already_requested(open_id)
            available = wallet["available_balance"] if wallet is not None else Decimal("0")
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
            row = await conn.fetchrow(REQUEST_SQL, uuid.uuid4(), user_id, amount)
            available_after = await balances.reserve_payout(conn, user_id, amount)
            await audit(
                conn,
                actor_type="user",
                actor_id=user_id,
                action="PAYOUT_REQUESTED",
                resource_type="payout",
                resource_id=row["id"],
                details={"amount": money(amount), "available_balance_after": money(available_after)},
            )
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != "uq_payouts_one_requested":
            raise
        open_id = await db.fetchval("SELECT id FROM payouts WHERE user_id = $1 AND status = 'requested'", user_id)
        raise already_requested(open_id) from None
    return payout_out(row)


async def list_payouts(
    *, offset: int, limit: int, status: str | None = None, user_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    filters = Filters()
    if status is not None:
        filters.add("status = {}", status)
    if user_id is not None:
        filters.add("user_id = {}", user_id)
    rows, total = await fetch_page(
        source="payouts",
        columns=PAYOUT_COLUMNS,
        filters=filters,
        order_by="requested_at DESC, id DESC",
        offset=offset,
        limit=limit,
    )
    return [payout_out(row) for row in rows], total


async def process_payout(payout_id: str, admin_id: str, status: str, external_reference: str | None) -> dict[str, Any]:
    """PATCH /payouts/{id}: 404 -> lock the owner's wallet, then the payout -> 400 unless requested."""
    owner = await db.fetchval("SELECT user_id FROM payouts WHERE id = $1", payout_id)
    if owner is None:
        raise not_found("payout", payout_id)
    async with db.transaction() as conn:
        await balances.lock(conn, owner)
        payout = await conn.fetchrow(f"SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = $1 FOR UPDATE", payout_id)
        if payout["status"] != "requested":
            raise ApiError(
                400,
                "INVALID_PAYOUT_TRANSITION",
                f"Cannot change payout '{payout_id}' from '{payout['status']}' to '{status}'.",
                {
                    "payout_id": payout_id,
                    "current_status": payout["status"],
                    "requested_status": status,
                    "allowed_from": ["requested"],
                },
            )
        row = await conn.fetchrow(PROCESS_SQL, payout_id, status, admin_id, external_reference)
        try:
            if status == "completed":
                await balances.complete_payout(conn, owner, payout["amount"])
            else:
                await balances.fail_payout(conn, owner, payout["amount"])
        except balances.BalanceLimitExceeded as error:
            raise balance_limit_exceeded(error.balance, {"payout_id": payout_id}) from None
        await audit(
            conn,
            actor_type="admin",
            actor_id=admin_id,
            action="PAYOUT_COMPLETED" if status == "completed" else "PAYOUT_FAILED",
            resource_type="payout",
            resource_id=payout["id"],
            details={
                "user_id": str(owner),
                "amount": money(payout["amount"]),
                "external_reference": external_reference,
            },
        )
    return payout_out(row)

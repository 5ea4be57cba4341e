"""Partner merchants (API.md §3.3, §4.2): case-insensitive unique names, status changes, audited."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from server import db
from server.audit import service as audit
from server.errors import ApiError, not_found, rules_error, violation
from server.http import page, rate, rate_text
from server.pagination import Filters, fetch_page

NAME_INDEX = "uq_merchants_name_ci"
MERCHANT_COLUMNS = "id, name, default_cashback_percentage, active"


def render_limit(value: Decimal) -> str:
    """MAX_CASHBACK_PERCENTAGE as the messages show it: 20 -> "20.0", 12.5 -> "12.5"."""
    return rate_text(value)


def merchant_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "default_cashback_percentage": rate(row["default_cashback_percentage"]),
        "active": row["active"],
    }


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "MERCHANT_NAME_TAKEN", f"A merchant named '{name}' already exists.", {"name": name})


async def create(
    admin_id: str, max_percentage: Decimal, name: str, percentage: Decimal, active: bool
) -> dict[str, Any]:
    if not Decimal(0) <= percentage <= max_percentage:
        raise rules_error(
            [
                violation(
                    "default_cashback_percentage",
                    f"Default cashback percentage must be between 0 and {render_limit(max_percentage)}.",
                )
            ]
        )
    if await db.fetchval("SELECT 1 FROM merchants WHERE lower(name) = lower($1)", name):
        raise _name_taken(name)
    try:
        async with db.transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO merchants (id, name, default_cashback_percentage, active) VALUES ($1, $2, $3, $4) "
                f"RETURNING {MERCHANT_COLUMNS}",
                uuid.uuid4(),
                name,
                percentage,
                active,
            )
            await audit.record(
                conn,
                actor_type="admin",
                actor_id=admin_id,
                action="MERCHANT_CREATED",
                resource_type="merchant",
                resource_id=row["id"],
                details={"name": name, "default_cashback_percentage": rate(percentage), "active": active},
            )
    except asyncpg.UniqueViolationError as error:
        # Two creations raced past the pre-check: the unique index decides, with the same 409.
        if error.constraint_name == NAME_INDEX:
            raise _name_taken(name) from None
        raise
    return merchant_out(row)


async def list_page(offset: int, limit: int, active: bool | None) -> dict[str, Any]:
    where = Filters().add("active = {}", active) if active is not None else Filters()
    rows, total = await fetch_page(
        source="merchants",
        columns=MERCHANT_COLUMNS,
        filters=where,
        order_by="lower(name), id",
        offset=offset,
        limit=limit,
    )
    return page([merchant_out(row) for row in rows], offset, limit, total)


async def set_status(admin_id: str, merchant_id: str | None, raw_id: str, status: str) -> dict[str, str]:
    if merchant_id is None:
        raise not_found("merchant", raw_id)
    wanted = status == "active"
    async with db.transaction() as conn:
        current = await conn.fetchval("SELECT active FROM merchants WHERE id = $1 FOR UPDATE", merchant_id)
        if current is None:
            raise not_found("merchant", merchant_id)
        if current != wanted:
            await conn.execute("UPDATE merchants SET active = $2 WHERE id = $1", merchant_id, wanted)
            await audit.record(
                conn,
                actor_type="admin",
                actor_id=admin_id,
                action="MERCHANT_STATUS_CHANGED",
                resource_type="merchant",
                resource_id=merchant_id,
                details={"from": "active" if current else "inactive", "to": status},
            )
    return {"id": merchant_id, "status": status}

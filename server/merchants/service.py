"""Partner merchants (API.md §3.3, §4.2): case-insensitive unique names, status changes, audited."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Lower
from tortoise.transactions import in_transaction

from server.audit import service as audit
from server.errors import ApiError, not_found, rules_error, violation
from server.http import page, rate, rate_text
from server.merchants.models import Merchant
from server.pagination import page_of

NAME_INDEX = "uq_merchants_name_ci"
MERCHANT_FIELDS = ("id", "name", "default_cashback_percentage", "active")


def render_limit(value: Decimal) -> str:
    """MAX_CASHBACK_PERCENTAGE as the messages show it: 20 -> "20.0", 12.5 -> "12.5"."""
    return rate_text(value)


def merchant_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "default_cashback_percentage": rate(row["default_cashback_percentage"]),
        "active": row["active"],
    }


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "MERCHANT_NAME_TAKEN", f"A merchant named '{name}' already exists.", {"name": name})


async def name_in_use(name: str) -> bool:
    """Case-insensitively, as the unique index uq_merchants_name_ci compares."""
    return await Merchant.annotate(lower_name=Lower("name")).filter(lower_name=name.lower()).exists()


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
    if await name_in_use(name):
        raise _name_taken(name)
    try:
        async with in_transaction() as tx:
            merchant = await Merchant.create(
                using_db=tx, name=name, default_cashback_percentage=percentage, active=active
            )
            await audit.record(
                tx,
                actor_type="admin",
                actor_id=admin_id,
                action="MERCHANT_CREATED",
                resource_type="merchant",
                resource_id=merchant.id,
                details={"name": name, "default_cashback_percentage": rate(percentage), "active": active},
            )
    except IntegrityError as error:
        # Two creations raced past the pre-check: the unique index decides, with the same 409.
        if getattr(error.__cause__, "constraint_name", None) == NAME_INDEX:
            raise _name_taken(name) from None
        raise
    return merchant_out({name: getattr(merchant, name) for name in MERCHANT_FIELDS})


async def list_page(offset: int, limit: int, active: bool | None) -> dict[str, Any]:
    query = Merchant.filter(active=active) if active is not None else Merchant.all()
    rows, total = await page_of(
        query,
        fields=MERCHANT_FIELDS,
        computed={"name_ci": Lower("name")},
        order_by=("name_ci", "id"),
        offset=offset,
        limit=limit,
    )
    return page([merchant_out(row) for row in rows], offset, limit, total)


async def set_status(admin_id: str, merchant_id: str | None, raw_id: str, status: str) -> dict[str, str]:
    if merchant_id is None:
        raise not_found("merchant", raw_id)
    wanted = status == "active"
    async with in_transaction() as tx:
        this_merchant = Merchant.filter(id=merchant_id).using_db(tx)
        merchant = await this_merchant.select_for_update().first()  # an instance: values() would drop the lock
        if merchant is None:
            raise not_found("merchant", merchant_id)
        current = merchant.active
        if current != wanted:
            await this_merchant.update(active=wanted)
            await audit.record(
                tx,
                actor_type="admin",
                actor_id=admin_id,
                action="MERCHANT_STATUS_CHANGED",
                resource_type="merchant",
                resource_id=merchant_id,
                details={"from": "active" if current else "inactive", "to": status},
            )
    return {"id": merchant_id, "status": status}

"""Writing the audit log. Always called with the change's own Tortoise transaction,
so the change and its audit row commit or roll back together (API.md §4.9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import RawSQL

from server.audit.models import AuditLog
from server.http import page
from server.pagination import page_of


async def record(
    tx: BaseDBAsyncClient,
    *,
    actor_type: str,
    actor_id: Any,
    action: str,
    resource_type: str,
    resource_id: Any,
    details: dict[str, Any],
) -> None:
    """Append one audit row. Money values in `details` must already be strings."""
    await AuditLog.create(
        using_db=tx,
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )


ACTIONS = (
    "PURCHASE_CONFIRMED",
    "PURCHASE_CONFIRMED_BY_ADMIN",
    "PURCHASE_REJECTED",
    "PURCHASE_REVERSED",
    "MERCHANT_CREATED",
    "MERCHANT_STATUS_CHANGED",
    "OFFER_CREATED",
    "OFFER_STATUS_CHANGED",
    "FEATURE_FLAG_SET",
    "FEATURE_FLAG_DELETED",
    "PAYOUT_REQUESTED",
    "PAYOUT_COMPLETED",
    "PAYOUT_FAILED",
)
RESOURCE_TYPES = ("purchase", "merchant", "offer", "feature_flag", "payout")
AUDIT_FIELDS = ("id", "occurred_at", "actor_type", "actor_id", "action", "resource_type", "resource_id", "outcome")
# PostgreSQL's own text of the jsonb, passed through: a number in it (a cap of 19 digits) stays
# exact, where parsing it (as JSONField does) would turn it into a binary float.
DETAILS_TEXT = RawSQL("details::text")
# Filter name -> the queryset lookup it adds; `from` is inclusive and `to` exclusive (API.md §3.9).
FILTERS = {
    "action": "action",
    "resource_type": "resource_type",
    "resource_id": "resource_id",
    "actor_id": "actor_id",
    "from": "occurred_at__gte",
    "to": "occurred_at__lt",
}


def audit_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "occurred_at": row["occurred_at"],
        "actor_type": row["actor_type"],
        "actor_id": str(row["actor_id"]) if row["actor_id"] is not None else None,
        "action": row["action"],
        "resource_type": row["resource_type"],
        "resource_id": str(row["resource_id"]),
        "outcome": row["outcome"],
        "details": orjson.Fragment(row["details_text"]),
    }


async def list_page(offset: int, limit: int, filters: dict[str, Any]) -> dict[str, Any]:
    """Newest first. `filters` holds only the filters that were given."""
    given = {lookup: filters[name] for name, lookup in FILTERS.items() if filters.get(name) is not None}
    rows, total = await page_of(
        AuditLog.filter(**given),
        fields=AUDIT_FIELDS,
        computed={"details_text": DETAILS_TEXT},
        order_by=("-occurred_at", "-id"),
        offset=offset,
        limit=limit,
    )
    return page([audit_out(row) for row in rows], offset, limit, total)

"""Writing the audit log. Always called with the change's own Tortoise transaction,
so the change and its audit row commit or roll back together (API.md §4.9)."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from server.audit.models import AuditLog
from server.http import page
from server.pagination import Filters, fetch_page


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


# The verification job's audit rows of one batch, in one statement: building a model instance per
# row was a third of the job's time; bench row job_backlog (bench/backlog.py, bench/job_alone.py).
RECORD_MANY_SQL = """
INSERT INTO audit_logs (actor_type, actor_id, action, resource_type, resource_id, details)
SELECT actor_type, actor_id, action, resource_type, resource_id, details::jsonb
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[])
    AS batch (actor_type, actor_id, action, resource_type, resource_id, details)
"""
COLUMNS = ("actor_type", "actor_id", "action", "resource_type", "resource_id")


async def record_many(tx: BaseDBAsyncClient, rows: list[dict[str, Any]]) -> None:
    """Append one audit row per item of `rows` (record()'s keyword arguments), in one statement."""
    if rows:
        columns = [[row[name] for row in rows] for name in COLUMNS]
        details = [orjson.dumps(row["details"]).decode() for row in rows]
        await tx.execute_query(RECORD_MANY_SQL, [*columns, details])


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
AUDIT_COLUMNS = "id, occurred_at, actor_type, actor_id, action, resource_type, resource_id, outcome, details"
# Filter name -> the condition it adds; `from` is inclusive and `to` exclusive (API.md §3.9).
FILTERS = {
    "action": "action = {}",
    "resource_type": "resource_type = {}",
    "resource_id": "resource_id = {}::uuid",
    "actor_id": "actor_id = {}::uuid",
    "from": "occurred_at >= {}",
    "to": "occurred_at < {}",
}


def audit_out(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "occurred_at": row["occurred_at"],
        "actor_type": row["actor_type"],
        "actor_id": str(row["actor_id"]) if row["actor_id"] is not None else None,
        "action": row["action"],
        "resource_type": row["resource_type"],
        "resource_id": str(row["resource_id"]),
        "outcome": row["outcome"],
        # PostgreSQL's own text of the jsonb, passed through: a number in it (a cap of 19 digits)
        # stays exact, where parsing it here would turn it into a binary float.
        "details": orjson.Fragment(row["details"]),
    }


async def list_page(offset: int, limit: int, filters: dict[str, Any]) -> dict[str, Any]:
    """Newest first. `filters` holds only the filters that were given."""
    where = Filters()
    for name, condition in FILTERS.items():
        if filters.get(name) is not None:
            where.add(condition, filters[name])
    rows, total = await fetch_page(
        source="audit_logs",
        columns=AUDIT_COLUMNS,
        filters=where,
        order_by="occurred_at DESC, id DESC",
        offset=offset,
        limit=limit,
    )
    return page([audit_out(row) for row in rows], offset, limit, total)

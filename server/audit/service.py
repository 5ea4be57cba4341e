"""Writing the audit log. Always called with the change's own Tortoise transaction,
so the change and its audit row commit or roll back together (API.md §4.9)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import RawSQL
from tortoise.functions import Sum
from tortoise.queryset import QuerySet

from server.audit.models import AuditDayCount, AuditLog
from server.http import page
from server.pagination import Counted, page_of


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


# The filters audit_day_counts answers (migration 6): the action and the time range.
DAY_COUNTED = {"action", "occurred_at__gte", "occurred_at__lt"}


def _midnight(moment: datetime, *, up: bool) -> datetime:
    """The UTC midnight at or after (`up`) or at or before `moment`."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1) if up and day < moment else day


def day_counted_total(action: str | None, start: datetime | None, end: datetime | None) -> list[Counted]:
    """The parts of how many audit rows have `action` (any, if None) in [start, end): the whole UTC
    days summed from audit_day_counts, the partial days at either end counted from the log, so the
    cost does not grow with the range or the log. A partial day counts its shorter side: the rows
    inside the range, or the whole day's count less the rows outside it (at most half a day's rows)."""
    rows = AuditLog.filter(action=action) if action is not None else AuditLog.all()
    try:
        first = _midnight(start, up=True) if start is not None else None
        last = _midnight(end, up=False) if end is not None else None
    except OverflowError:  # a `from` on 9999-12-31: no whole day after it
        rows = rows.filter(occurred_at__gte=start) if start is not None else rows
        return [(rows.filter(occurred_at__lt=end) if end is not None else rows).count()]
    if first is not None and last is not None and first >= last:  # no whole day inside: count it
        return [rows.filter(occurred_at__gte=start, occurred_at__lt=end).count()]
    low, high = (first.date() if first else None), (last.date() if last else None)
    ends: list[Counted] = []
    if start is not None and first is not None and start < first:
        midnight = first - timedelta(days=1)
        if start - midnight < first - start:  # the whole day, less its rows before `start`
            low = midnight.date()
            ends.append(_negated(rows.filter(occurred_at__gte=midnight, occurred_at__lt=start)))
        else:
            ends.append(rows.filter(occurred_at__gte=start, occurred_at__lt=first).count())
    if end is not None and last is not None and last < end:
        try:
            midnight = last + timedelta(days=1)
        except OverflowError:  # a `to` on 9999-12-31: no day after it to count from
            midnight = last
        if midnight > last and midnight - end < end - last:  # the whole day, less its rows from `end`
            high = midnight.date()
            ends.append(_negated(rows.filter(occurred_at__gte=end, occurred_at__lt=midnight)))
        else:
            ends.append(rows.filter(occurred_at__gte=last, occurred_at__lt=end).count())
    days = AuditDayCount.filter(action=action) if action is not None else AuditDayCount.all()
    if low is not None:
        days = days.filter(day__gte=low)
    if high is not None:
        days = days.filter(day__lt=high)
    return [days.annotate(rows=Sum("n")).values("rows"), *ends]


def _negated(rows: QuerySet[AuditLog]) -> Counted:
    """Minus the number of `rows`: one value, a part of a total that the other parts add up."""
    return rows.annotate(rows=RawSQL("-count(*)")).values("rows")


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
    counted = None
    if set(given) <= DAY_COUNTED:
        counted = day_counted_total(filters.get("action"), filters.get("from"), filters.get("to"))
    query = AuditLog.filter(**given)
    rows, total = await page_of(
        query,
        total=counted,
        # The page's ids first, index-only through the filter's index, then its 20 rows: the planner
        # would otherwise walk ix_audit_occurred past every newer row of another action.
        window=(query, offset),
        fields=AUDIT_FIELDS,
        computed={"details_text": DETAILS_TEXT},
        order_by=("-occurred_at", "-id"),
        offset=offset,
        limit=limit,
    )
    return page([audit_out(row) for row in rows], offset, limit, total)

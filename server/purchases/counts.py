"""A user's purchase counts by UTC month and status (purchase_month_counts, kept by the triggers of
migration 6): the exact totals of that user's lists, and the month that holds a deep offset.

A total sums at most 4 x (months of history) rows, however many purchases they count. A deep
offset walks the same rows newest first to the month holding row `offset`, so the page scans at
most that month's purchases instead of every newer one (docs/adr/0030-exact-totals-in-constant-time.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from tortoise.functions import Sum
from tortoise.queryset import QuerySet, ValuesQuery

from server.purchases.models import PurchaseDayCount, PurchaseMonthCount

# Below this offset the page's index walks at most this many entries, which costs less than the
# extra statement that reads the months.
DEEP_OFFSET = 1000


def _counts(user_id: Any, status: str | None) -> QuerySet[PurchaseMonthCount]:
    query = PurchaseMonthCount.filter(user_id=user_id)
    return query.filter(status=status) if status is not None else query


def day_total_of(status: str | None, start: date | None, end: date | None) -> ValuesQuery[Any]:
    """How many purchases (with this status) were created on the UTC days start..end, both
    inclusive, from purchase_day_counts: one value, NULL when none. At most 4 statuses × 64 slots a day."""
    query = PurchaseDayCount.all()
    if status is not None:
        query = query.filter(status=status)
    if start is not None:
        query = query.filter(day__gte=start)
    if end is not None:
        query = query.filter(day__lte=end)
    return query.annotate(rows=Sum("n")).values("rows")


def total_of(user_id: Any, status: str | None = None) -> ValuesQuery[Any]:
    """How many purchases the user has (with this status): one value, NULL when none."""
    return _counts(user_id, status).annotate(rows=Sum("n")).values("rows")


@dataclass(frozen=True)
class Window:
    """Where row `offset` of the newest-first list lies: among the rows before `until` (the end of
    its month; None for the newest month), after the first `skip` of them."""

    until: datetime | None
    skip: int


def month_end(month: date) -> datetime:
    """The first instant after a UTC month."""
    year, index = divmod(month.year * 12 + month.month, 12)  # month.month is 1-based: index is the next one
    return datetime(year, index + 1, 1, tzinfo=UTC)


def locate(months: Sequence[Mapping[str, Any]], offset: int) -> tuple[Window | None, int]:
    """The month holding row `offset` of the user's purchases newest first (None when the offset is
    past the end), and the list's total, from the user's counts by month newest first (rows with
    `month` and `rows`, as server/purchases/own_page.py reads them)."""
    total = sum(int(month["rows"]) for month in months)
    before, newest = 0, True
    for month in months:
        rows = int(month["rows"])
        if before + rows > offset:
            return Window(until=None if newest else month_end(month["month"]), skip=offset - before), total
        before += rows
        newest = newest and rows == 0
    return None, total

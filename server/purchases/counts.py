"""A user's purchase counts by UTC month and status (purchase_month_counts, kept by the triggers of
migration 7): the exact totals of that user's lists.

A total sums at most 4 x (months of history) rows, however many purchases they count
(docs/adr/0030-exact-totals-in-constant-time.md).
"""

from __future__ import annotations

from typing import Any

from tortoise.functions import Sum
from tortoise.queryset import QuerySet, ValuesQuery

from server.purchases.models import PurchaseMonthCount


def _counts(user_id: Any, status: str | None) -> QuerySet[PurchaseMonthCount]:
    query = PurchaseMonthCount.filter(user_id=user_id)
    return query.filter(status=status) if status is not None else query


def total_of(user_id: Any, status: str | None = None) -> ValuesQuery[Any]:
    """How many purchases the user has (with this status): one value, NULL when none."""
    return _counts(user_id, status).annotate(rows=Sum("n")).values("rows")

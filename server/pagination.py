"""Pages of a Tortoise queryset with the exact total of API.md §1.5, in one statement.

The total rides on the page as an uncorrelated scalar subquery (PostgreSQL runs it once), so the page
and its total share one snapshot and one round trip: each extra round trip costs a list more CPU
than building the queryset does. The count reads the filtered table alone, without the page's
joins, which do not change how many rows match. Only an empty page past offset 0 has no row to
carry the total and counts it apart; an offset past the end still returns the real total.

A page's size is written into its statement (`LIMIT 10`), not sent as a parameter: PostgreSQL reads
`LIMIT $n` as a tenth of the rows, so the plan it could keep for a statement looks dearer than one
made for each request, and it plans every request again (docs/adr/0048-page-size-in-the-statement.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any

from pypika_tortoise.terms import Term
from tortoise.expressions import Expression, Subquery
from tortoise.queryset import CountQuery, QuerySet, ValuesQuery

from server.config import PAGE_SIZE_CEILING

TOTAL = "page_total"  # the columns that carry the total (or its parts) on every row of the page
Counted = CountQuery | ValuesQuery[Any]

# pypika writes an Enum's value into the statement where it would send any other value as a parameter.
# (mypy cannot list members made from a comprehension.)
PageSize = IntEnum("PageSize", {f"rows_{size}": size for size in range(1, PAGE_SIZE_CEILING + 1)})  # type: ignore[misc]


def written(limit: int) -> int:
    """`limit` as a value Tortoise writes into the statement (a page size of 1..PAGE_SIZE_CEILING)."""
    return PageSize(limit) if 1 <= limit <= PAGE_SIZE_CEILING else limit


async def page_of(
    query: QuerySet[Any],
    *,
    fields: Sequence[str],
    order_by: Sequence[str],
    offset: int,
    limit: int,
    related: Mapping[str, str] | None = None,
    computed: Mapping[str, Expression | Term] | None = None,
    total: Counted | Sequence[Counted] | None = None,
    window: tuple[QuerySet[Any], int] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The rows of `query` ordered by `order_by` from `offset`, at most `limit`, as dicts of
    `fields` (plus `related`: name -> "relation__column", and `computed`: name -> expression),
    and how many rows match.

    `total` replaces the count with a query of one value (a counter table's sum), or with several
    whose values add up to the total; each rides on the page as its own subquery. `window` is
    (`query` narrowed to rows that start later, the rows of it to skip) for a deep offset: the ids
    of the page are cut from it without the page's joins, which then read only `limit` rows."""
    if total is None:
        parts: list[Counted] = [query.count()]
    elif isinstance(total, (list, tuple)):
        parts = list(total)
    else:
        parts = [total]  # type: ignore[list-item]
    names = [f"{TOTAL}_{index}" for index in range(len(parts))]
    totals = {name: Subquery(part) for name, part in zip(names, parts, strict=True)}
    if window is None:
        sliced = query.annotate(**(computed or {}), **totals).order_by(*order_by).offset(offset).limit(written(limit))
    else:
        # The rows are found by their ids alone, without `query`'s filters again: given those, the
        # planner may start from a filter's index and walk every row it matches to meet the ids.
        narrowed, skip = window
        ids = narrowed.order_by(*order_by).offset(skip).limit(written(limit)).values("id")
        sliced = query.model.filter(id__in=Subquery(ids)).annotate(**(computed or {}), **totals).order_by(*order_by)
    rows = await sliced.values(*fields, *(computed or {}), *names, **(related or {}))
    if rows:
        return rows, sum(int(rows[0][name] or 0) for name in names)
    if offset == 0:
        return rows, 0  # nothing matches: the page's own snapshot says so
    return rows, sum([await count_of(part) for part in parts])


async def count_of(counted: CountQuery | ValuesQuery[Any]) -> int:
    """The value of a count (or of a one-value sum, NULL when it sums no row)."""
    found = await counted
    if isinstance(found, int):
        return found
    return int(next(iter(found[0].values())) or 0) if found else 0

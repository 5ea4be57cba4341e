"""Pages of a Tortoise queryset with the exact total of API.md §1.5.

The slice and the total are read in one read-only REPEATABLE READ transaction, so `total` always
matches the rows the page was cut from, though they are two statements. The total counts the
filtered table alone (no joins: the page's joined columns do not change how many rows match), and
it is not counted at all when the page itself ends the list. An offset past the end still returns
the real total.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pypika_tortoise.terms import Term
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Expression
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

# The snapshot the page and its total share; a list never writes.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

Counter = Callable[[BaseDBAsyncClient], Awaitable[int]]
Slicer = Callable[[BaseDBAsyncClient, int, int], Awaitable[list[dict[str, Any]]]]


async def page_of(
    query: QuerySet[Any],
    *,
    fields: Sequence[str],
    order_by: Sequence[str],
    offset: int,
    limit: int,
    related: Mapping[str, str] | None = None,
    computed: Mapping[str, Expression | Term] | None = None,
    total: Counter | None = None,
    rows: Slicer | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The rows of `query` ordered by `order_by`, `offset` and `limit` applied, as dicts of `fields`
    (plus `related`: name -> "relation__column", and `computed`: name -> expression), and how many
    rows `query` matches.

    `total` replaces the count (a counter table's sum); `rows` replaces the slice (a bucketed
    walk for deep offsets). Both receive the transaction, so they read the same snapshot."""

    async def slice_of(tx: BaseDBAsyncClient, offset: int, limit: int) -> list[dict[str, Any]]:
        sliced = query.using_db(tx)
        if computed:
            sliced = sliced.annotate(**computed)
        sliced = sliced.order_by(*order_by).offset(offset).limit(limit)
        return await sliced.values(*fields, *(computed or {}), **(related or {}))

    async def count(tx: BaseDBAsyncClient) -> int:
        return await query.using_db(tx).count()

    async with in_transaction() as tx:
        await tx.execute_script(SNAPSHOT)
        data = await (rows or slice_of)(tx, offset, limit)
        if len(data) < limit and (data or offset == 0):
            return data, offset + len(data)  # this page ends the list: its end is the total
        return data, await (total or count)(tx)

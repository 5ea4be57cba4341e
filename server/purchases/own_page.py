"""One user's purchases newest first, with the exact total (API.md §1.5, §3.5): GET /users/me/purchases,
and the admin list filtered by that user alone (or with a status).

Raw SQL kept for bench rows heavy_purchases_first_page, heavy_purchases_offset_50000 and mixed: as
querysets, building the page, its total and the deep offset's months cost the instance 1.2 ms of CPU a
request, most of it copying Tortoise's query objects; PostgreSQL's share is about 0.3 ms (ADR 0002).
The plan is ADR 0035's: the page's ids are cut from the user's index alone, then its rows are read by
id. The total and a deep offset's month come from the user's counts (server/purchases/counts.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any
from uuid import UUID

from server import db
from server.config import PAGE_SIZE_CEILING
from server.purchases import counts

COLUMNS = (
    "p.id, p.external_id, p.user_id, p.merchant_id, p.offer_id, p.amount, p.currency, p.status, "
    "p.cashback_amount, p.created_at, m.name AS merchant_name, t.status AS cashback_status"
)


@cache
def page_sql(by_status: bool, before_month: bool, skips: bool, limit: int, with_total: bool = True) -> str:
    """The page statement: $1 user, then the rows to skip when `skips`, the status and the end of the
    offset's month when given. With `with_total` every row carries the user's total from the counts,
    in the page's snapshot. The page size is written in, as server/pagination.py explains (ADR 0048)."""
    if not 1 <= limit <= PAGE_SIZE_CEILING:
        raise ValueError(f"page size {limit} is not 1..{PAGE_SIZE_CEILING}")
    conditions, last = ["user_id = $1"], 1
    offset = ""
    if skips:
        last += 1
        offset = f"OFFSET ${last} "
    if by_status:
        last += 1
        conditions.append(f"status = ${last}")
    status_count = f" AND c.status = ${last}" if by_status else ""
    if before_month:
        last += 1
        conditions.append(f"created_at < ${last}")
    # Raw SQL kept for bench rows heavy_purchases_first_page, heavy_purchases_offset_50000 and mixed.
    total = f", (SELECT sum(c.n) FROM purchase_month_counts AS c WHERE c.user_id = $1{status_count}) AS total"
    return (
        f"SELECT {COLUMNS}{total if with_total else ''} FROM ("
        f"SELECT id FROM purchases WHERE {' AND '.join(conditions)} "
        f"ORDER BY created_at DESC, id DESC {offset}LIMIT {int(limit)}) AS page "
        "JOIN purchases AS p ON p.id = page.id "
        "LEFT JOIN merchants AS m ON m.id = p.merchant_id "
        "LEFT JOIN cashback_transactions AS t ON t.purchase_id = p.id "
        "ORDER BY p.created_at DESC, p.id DESC"
    )


async def _page(
    user: UUID, skip: int, limit: int, filters: list[Any], before: list[Any], with_total: bool = True
) -> list[Any]:
    """The rows of one page; a first page has no OFFSET, so its plan can be kept (ADR 0048)."""
    skipping = [skip] if skip else []
    sql = page_sql(bool(filters), bool(before), bool(skipping), limit, with_total)
    return await db.fetch(sql, user, *skipping, *filters, *before)


@cache
def months_sql(by_status: bool) -> str:
    """The user's counts by month, newest first: $1 user, then the status when given."""
    matching = " AND status = $2" if by_status else ""
    # Raw SQL kept for bench row heavy_purchases_offset_50000.
    return (
        f"SELECT month, sum(n) AS rows FROM purchase_month_counts WHERE user_id = $1{matching} "
        "GROUP BY month ORDER BY month DESC"
    )


async def own_page(user_id: str, status: str | None, offset: int, limit: int) -> tuple[list[Any], int]:
    """The page's rows (records with the columns of server/purchases/service.purchase_out) and the total."""
    user = UUID(user_id)
    by_status = status is not None
    filters: list[Any] = [status] if by_status else []
    if offset < counts.DEEP_OFFSET:
        rows = await _page(user, offset, limit, filters, [])
        if rows:
            return rows, int(rows[0]["total"] or 0)
        if offset == 0:
            return rows, 0  # nothing matches: the page's own snapshot says so
        months = await db.fetch(months_sql(by_status), user, *filters)
        return rows, counts.locate(months, offset)[1]
    months = await db.fetch(months_sql(by_status), user, *filters)
    found, total = counts.locate(months, offset)
    if found is None:
        return [], total
    before = [found.until] if found.until is not None else []
    # The total is the one that placed the page, from the same snapshot as its month and skip; reading
    # the counts again cost the heavy user's deep page a tenth of its time at 10M (docs/benchmarks.md).
    rows = await _page(user, found.skip, limit, filters, before, with_total=False)
    return rows, total

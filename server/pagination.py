"""One-round-trip pages: the total and the requested slice come back from a single statement.

The count and the slice share the same WHERE clause and snapshot, so `total` always matches the
rows the page was cut from; an offset past the end still returns the real total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server import db


@dataclass
class Filters:
    """AND-combined conditions with positional parameters ($1, $2, ...)."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, condition: str, *values: Any) -> Filters:
        """`condition` uses `{}` for each value's placeholder, e.g. "p.user_id = {}"."""
        placeholders = []
        for value in values:
            self.params.append(value)
            placeholders.append(f"${len(self.params)}")
        self.conditions.append(condition.format(*placeholders))
        return self

    def where(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "TRUE"


async def fetch_page(
    *, source: str, columns: str, filters: Filters, order_by: str, offset: int, limit: int
) -> tuple[list[Any], int]:
    """Rows of `SELECT columns FROM source WHERE filters ORDER BY order_by` plus the total."""
    where = filters.where()
    params = [*filters.params, limit, offset]
    limit_at, offset_at = len(params) - 1, len(params)
    sql = (
        f"SELECT counted.total, page.* FROM (SELECT count(*) AS total FROM {source} WHERE {where}) AS counted "
        f"LEFT JOIN LATERAL (SELECT {columns} FROM {source} WHERE {where} ORDER BY {order_by} "
        f"LIMIT ${limit_at} OFFSET ${offset_at}) AS page ON TRUE"
    )
    rows = await db.fetch(sql, *params)
    total = rows[0]["total"] if rows else 0
    # An empty page still yields one row (the total) with NULL columns: drop it.
    data = [row for row in rows if row["id"] is not None]
    return data, total

"""The caller's wallet (API.md §3.6): stored balances plus the derived reserved balance."""

from __future__ import annotations

from typing import Any

from server import db
from server.http import money
from server.pagination import Filters, fetch_page

# One round trip: the three stored balances and the sum of the caller's open payouts.
SUMMARY_SQL = """
SELECT w.pending_balance, w.available_balance, w.paid_balance,
       (SELECT COALESCE(SUM(amount), 0) FROM payouts WHERE user_id = $1 AND status = 'requested') AS reserved_balance
FROM wallets w WHERE w.user_id = $1
"""


async def summary(user_id: str) -> dict[str, Any]:
    row = await db.fetchrow(SUMMARY_SQL, user_id)
    names = ("pending_balance", "available_balance", "paid_balance", "reserved_balance")
    if row is None:  # every user gets a wallet at registration; render an absent one as empty
        return {name: "0.00" for name in names}
    return {name: money(row[name]) for name in names}


async def transactions(user_id: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    rows, total = await fetch_page(
        source="cashback_transactions", columns="id, amount, status, purchase_id, created_at",
        filters=Filters().add("user_id = {}", user_id), order_by="created_at DESC, id DESC",
        offset=offset, limit=limit,
    )
    return [{
        "id": str(row["id"]),
        "type": "cashback_credit",
        "amount": money(row["amount"]),
        "status": row["status"],
        "related_purchase_id": str(row["purchase_id"]),
        "created_at": row["created_at"],
    } for row in rows], total

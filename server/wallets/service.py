"""The caller's wallet (API.md §3.6): stored balances plus the derived reserved balance."""

from __future__ import annotations

from typing import Any

import asyncpg

from server.http import money
from server.pagination import page_of
from server.purchases import counts
from server.purchases.models import CashbackTransaction

# The three stored balances and the sum of the caller's open payouts, read with the caller's own
# row in one statement (endpoint(about_caller=...)): one round trip for the whole request.
# Raw SQL kept for bench row wallet_summary: read with the caller's own row, one round trip.
SUMMARY_OF_CALLER = """
SELECT w.user_id IS NOT NULL AS has_wallet, w.pending_balance, w.available_balance, w.paid_balance,
       (SELECT COALESCE(SUM(p.amount), 0) FROM payouts p
        WHERE p.user_id = u.id AND p.status = 'requested') AS reserved_balance
FROM (SELECT 1) AS one LEFT JOIN wallets w ON w.user_id = u.id
"""
BALANCES = ("pending_balance", "available_balance", "paid_balance", "reserved_balance")


def summary(row: asyncpg.Record) -> dict[str, Any]:
    if not row["has_wallet"]:  # every user gets a wallet at registration; render an absent one as empty
        return {name: "0.00" for name in BALANCES}
    return {name: money(row[name]) for name in BALANCES}


async def transactions(user_id: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    rows, total = await page_of(
        CashbackTransaction.filter(user_id=user_id),
        fields=("id", "amount", "status", "purchase_id", "created_at"),
        # One transaction per purchase, the user's own (ingestion writes both, in one statement).
        total=counts.total_of(user_id),
        order_by=("-created_at", "-id"),
        offset=offset,
        limit=limit,
    )
    return [
        {
            "id": str(row["id"]),
            "type": "cashback_credit",
            "amount": money(row["amount"]),
            "status": row["status"],
            "related_purchase_id": str(row["purchase_id"]),
            "created_at": row["created_at"],
        }
        for row in rows
    ], total

"""The wallet invariants of API.md §4.5, checked for every user in one SQL statement.

    pending   = sum of pending cashback transactions
    available = sum of available transactions - sum of requested and completed payouts
    paid      = sum of completed payouts
    (reserved = sum of requested payouts is derived, so it cannot drift)

A user without a wallet is a mismatch too. Each mismatch is logged as a business warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from loguru import logger

from server.http import money

CHECK_SQL = """
WITH credits AS (
    SELECT user_id,
           SUM(amount) FILTER (WHERE status = 'pending') AS pending,
           SUM(amount) FILTER (WHERE status = 'available') AS available
    FROM cashback_transactions GROUP BY user_id
), debits AS (
    SELECT user_id,
           SUM(amount) FILTER (WHERE status IN ('requested', 'completed')) AS withdrawn,
           SUM(amount) FILTER (WHERE status = 'completed') AS paid
    FROM payouts GROUP BY user_id
), expected AS (
    SELECT u.id AS user_id, u.email, w.user_id IS NOT NULL AS has_wallet,
           w.pending_balance, w.available_balance, w.paid_balance,
           COALESCE(c.pending, 0) AS expected_pending,
           COALESCE(c.available, 0) - COALESCE(d.withdrawn, 0) AS expected_available,
           COALESCE(d.paid, 0) AS expected_paid
    FROM users u
    LEFT JOIN wallets w ON w.user_id = u.id
    LEFT JOIN credits c ON c.user_id = u.id
    LEFT JOIN debits d ON d.user_id = u.id
)
SELECT * FROM expected
WHERE NOT has_wallet
   OR pending_balance <> expected_pending
   OR available_balance <> expected_available
   OR paid_balance <> expected_paid
ORDER BY email, user_id
"""


@dataclass(frozen=True)
class Mismatch:
    user_id: str
    email: str
    balance: str  # "wallet" when the wallet row is missing
    stored: Decimal | None
    expected: Decimal

    def describe(self) -> str:
        if self.balance == "wallet":
            return f"user {self.user_id} ({self.email}): no wallet"
        stored = self.stored if self.stored is not None else Decimal("0")
        return (
            f"user {self.user_id} ({self.email}): {self.balance}_balance is {money(self.stored)}, "
            f"expected {money(self.expected)} (difference {money(stored - self.expected)})"
        )


async def find_mismatches(conn: asyncpg.Connection) -> list[Mismatch]:
    """Every broken invariant, one Mismatch per user and balance; [] when all wallets match."""
    found: list[Mismatch] = []
    for row in await conn.fetch(CHECK_SQL):
        user_id, email = str(row["user_id"]), row["email"]
        if not row["has_wallet"]:
            found.append(Mismatch(user_id, email, "wallet", None, Decimal("0")))
            continue
        for balance in ("pending", "available", "paid"):
            stored, expected = row[f"{balance}_balance"], row[f"expected_{balance}"]
            if stored != expected:
                found.append(Mismatch(user_id, email, balance, stored, expected))
    for mismatch in found:
        logger.bind(
            event="business.warning",
            reason="balance_mismatch",
            user_id=mismatch.user_id,
            balance=mismatch.balance,
            stored=money(mismatch.stored),
            expected=money(mismatch.expected),
        ).warning("wallet does not match its transactions and payouts")
    return found

"""Every change of a wallet balance, one function per movement of API.md §4.5.

Purchases (confirm, reject, reverse), payouts (reserve, complete, fail), the verification job and
registration (a new, empty wallet) call these, always inside the caller's transaction, after the
wallet row is locked with `lock()`. Each movement is one relative UPDATE, so concurrent writers
never lose one another's change. The credit at ingestion is the one movement made elsewhere: it is
a line of record_purchase (server/purchases/sql/record_purchase.sql), because ingestion runs in one
statement inside PostgreSQL (docs/adr/0003-ingestion-inside-postgresql.md).

Raw SQL on the transaction's asyncpg connection: the purchase transitions and payouts around these
calls hold their row locks through it (docs/adr/0002-orm-boundary-and-raw-sql.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

LOCK_SQL = "SELECT pending_balance, available_balance, paid_balance FROM wallets WHERE user_id = $1 FOR UPDATE"

# (statement, the balance that grows: the one that can pass numeric(19,2)'s limit)
_MOVES: dict[str, tuple[str, str | None]] = {
    "confirm": (
        "UPDATE wallets SET pending_balance = pending_balance - $2, available_balance = available_balance + $2,"
        " updated_at = now() WHERE user_id = $1",
        "available",
    ),
    "reject": (
        "UPDATE wallets SET pending_balance = pending_balance - $2, updated_at = now() WHERE user_id = $1",
        None,
    ),
    "reverse_pending": (
        "UPDATE wallets SET pending_balance = pending_balance - $2, updated_at = now() WHERE user_id = $1",
        None,
    ),
    "reverse_available": (
        "UPDATE wallets SET available_balance = available_balance - $2, updated_at = now() WHERE user_id = $1",
        None,
    ),
    "complete_payout": (
        "UPDATE wallets SET paid_balance = paid_balance + $2, updated_at = now() WHERE user_id = $1",
        "paid",
    ),
    "fail_payout": (
        "UPDATE wallets SET available_balance = available_balance + $2, updated_at = now() WHERE user_id = $1",
        "available",
    ),
}
RESERVE_SQL = (
    "UPDATE wallets SET available_balance = available_balance - $2, updated_at = now() WHERE user_id = $1"
    " RETURNING available_balance"
)


class BalanceLimitExceeded(Exception):
    """The movement would take `balance` past numeric(19,2): nothing moved (the statement failed)."""

    def __init__(self, balance: str) -> None:
        super().__init__(balance)
        self.balance = balance


async def open_wallet(conn: asyncpg.Connection, user_id: Any) -> None:
    """A new user's wallet, every balance 0.00."""
    await conn.execute("INSERT INTO wallets (user_id) VALUES ($1)", user_id)


async def lock(conn: asyncpg.Connection, user_id: Any) -> asyncpg.Record | None:
    """The wallet's row, locked until the transaction ends; None when the user has none."""
    return await conn.fetchrow(LOCK_SQL, user_id)


async def _move(conn: asyncpg.Connection, move: str, user_id: Any, amount: Decimal) -> None:
    sql, grows = _MOVES[move]
    try:
        await conn.execute(sql, user_id, amount)
    except asyncpg.NumericValueOutOfRangeError:
        if grows is None:
            raise
        raise BalanceLimitExceeded(grows) from None


async def confirm(conn: asyncpg.Connection, user_id: Any, cashback: Decimal) -> None:
    """A purchase confirmed: its cashback moves from pending to available."""
    await _move(conn, "confirm", user_id, cashback)


async def reject(conn: asyncpg.Connection, user_id: Any, cashback: Decimal) -> None:
    """A pending purchase rejected: its cashback leaves pending."""
    await _move(conn, "reject", user_id, cashback)


async def reverse(conn: asyncpg.Connection, user_id: Any, cashback: Decimal, purchase_status: str) -> None:
    """A purchase reversed: its cashback leaves the balance it sat in (pending, or available once
    confirmed)."""
    await _move(conn, "reverse_pending" if purchase_status == "pending" else "reverse_available", user_id, cashback)


async def reserve_payout(conn: asyncpg.Connection, user_id: Any, amount: Decimal) -> Decimal:
    """A payout requested: its amount leaves available. Returns the available balance after."""
    return await conn.fetchval(RESERVE_SQL, user_id, amount)


async def complete_payout(conn: asyncpg.Connection, user_id: Any, amount: Decimal) -> None:
    """A payout completed: its amount joins paid."""
    await _move(conn, "complete_payout", user_id, amount)


async def fail_payout(conn: asyncpg.Connection, user_id: Any, amount: Decimal) -> None:
    """A payout failed: its amount returns to available."""
    await _move(conn, "fail_payout", user_id, amount)

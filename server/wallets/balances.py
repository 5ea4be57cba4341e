"""Every change of a wallet balance, one function per movement of API.md §4.5.

Purchases (confirm, reject, reverse), payouts (reserve, complete, fail), the verification job and
registration (a new, empty wallet) call these, always inside the caller's Tortoise transaction
(`tx`), after the wallet row is locked with `lock()`. Each movement is one relative UPDATE (F()
expressions), so concurrent writers never lose one another's change. The credit at ingestion is the
one movement made elsewhere: it is a line of record_purchase (server/purchases/sql/record_purchase.sql),
because ingestion runs in one statement inside PostgreSQL (docs/adr/0003-ingestion-inside-postgresql.md).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import OperationalError
from tortoise.expressions import F, RawSQL

from server.wallets.models import Wallet

NOW = RawSQL("now()")  # the database clock, as every other timestamp of the row
# numeric(19,2): a balance past this fails its UPDATE (BalanceLimitExceeded).
BALANCE_LIMIT = Decimal("99999999999999999.99")
SETTLE_VERIFIED_SQL = (Path(__file__).resolve().parent / "sql" / "settle_verified.sql").read_text(encoding="utf-8")


class BalanceLimitExceeded(Exception):
    """The movement would take `balance` past numeric(19,2): nothing moved (the statement failed)."""

    def __init__(self, balance: str) -> None:
        super().__init__(balance)
        self.balance = balance


async def open_wallet(tx: BaseDBAsyncClient, user_id: Any) -> None:
    """A new user's wallet, every balance 0.00 (the columns' defaults)."""
    await Wallet.create(user_id=user_id, using_db=tx)


async def lock(tx: BaseDBAsyncClient, user_id: Any) -> Wallet | None:
    """The wallet, its row locked until the transaction ends; None when the user has none."""
    return await Wallet.filter(user_id=user_id).select_for_update().using_db(tx).first()


async def lock_many(tx: BaseDBAsyncClient, user_ids: set[Any]) -> dict[str, Wallet]:
    """The wallets of `user_ids`, locked until the transaction ends, by user id, for the verification
    job's batch. It waits for wallets held by others in user-id order (so two batches never deadlock)
    for at most the connection's lock_timeout; when that runs out, the wait is undone (a savepoint)
    and it returns only the wallets no one holds, so a request that keeps a wallet does not stall the
    batch past that bound: the caller settles those purchases later."""
    wallets = Wallet.filter(user_id__in=sorted(user_ids, key=str)).order_by("user_id")
    try:
        async with tx._in_transaction() as savepoint:
            return {str(w.pk): w for w in await wallets.select_for_update().using_db(savepoint)}
    except asyncpg.LockNotAvailableError:  # Tortoise passes this one through untranslated
        pass
    return {str(w.pk): w for w in await wallets.select_for_update(skip_locked=True).using_db(tx)}


async def _move(tx: BaseDBAsyncClient, user_id: Any, grows: str | None, **changes: Any) -> None:
    try:
        await Wallet.filter(user_id=user_id).using_db(tx).update(**changes, updated_at=NOW)
    except OperationalError as error:
        if grows is not None and isinstance(error.__cause__, asyncpg.NumericValueOutOfRangeError):
            raise BalanceLimitExceeded(grows) from None
        raise


async def confirm(tx: BaseDBAsyncClient, user_id: Any, cashback: Decimal) -> None:
    """A purchase confirmed: its cashback moves from pending to available."""
    await _move(
        tx,
        user_id,
        "available",
        pending_balance=F("pending_balance") - cashback,
        available_balance=F("available_balance") + cashback,
    )


async def settle_verified(tx: BaseDBAsyncClient, moves: dict[str, tuple[Decimal, Decimal]]) -> None:
    """The verification job's batch, wallets locked with lock_many(): per user id, (cashback leaving
    pending, cashback joining available), i.e. confirm() and reject() summed per wallet."""
    if moves:
        users = list(moves)
        await tx.execute_query(SETTLE_VERIFIED_SQL, [users, [moves[u][0] for u in users], [moves[u][1] for u in users]])


async def reject(tx: BaseDBAsyncClient, user_id: Any, cashback: Decimal) -> None:
    """A pending purchase rejected: its cashback leaves pending."""
    await _move(tx, user_id, None, pending_balance=F("pending_balance") - cashback)


async def reverse(tx: BaseDBAsyncClient, user_id: Any, cashback: Decimal, purchase_status: str) -> None:
    """A purchase reversed: its cashback leaves the balance it sat in (pending, or available once
    confirmed)."""
    balance = "pending_balance" if purchase_status == "pending" else "available_balance"
    await _move(tx, user_id, None, **{balance: F(balance) - cashback})


async def reserve_payout(tx: BaseDBAsyncClient, user_id: Any, amount: Decimal) -> None:
    """A payout requested: its amount leaves available."""
    await _move(tx, user_id, None, available_balance=F("available_balance") - amount)


async def complete_payout(tx: BaseDBAsyncClient, user_id: Any, amount: Decimal) -> None:
    """A payout completed: its amount joins paid."""
    await _move(tx, user_id, "paid", paid_balance=F("paid_balance") + amount)


async def fail_payout(tx: BaseDBAsyncClient, user_id: Any, amount: Decimal) -> None:
    """A payout failed: its amount returns to available."""
    await _move(tx, user_id, "available", available_balance=F("available_balance") + amount)

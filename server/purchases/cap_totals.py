"""cashback_monthly_totals (migration 4) checked against the purchases, and rebuilt from them.

Each total holds, per (user, offer, UTC month of created_at), the sum of cashback_amount over the
purchases that count: status pending or confirmed. The triggers on purchases keep it exact, so a
mismatch means something wrote behind them (a hand-edited or deleted total, a purchase changed with
session_replication_role = replica). A missing total is the one that hurts: the trigger refuses
(data_corrupted) to change a counted purchase whose total is gone, so the admin reversal and the
job's rejection of it fail until the totals are rebuilt.

A total of 0.00 over no counted purchases is not a mismatch: the trigger leaves one behind when the
last counted purchase of a month is reversed or rejected.

The rebuild's INSERT is server/purchases/sql/monthly_totals_backfill.sql, the file migration 4
applies by name: one copy of the rule for both.

The same triggers' neighbours keep purchase_month_counts (migration 6: purchases per user, UTC month
and status, the lists' totals), which drifts and refuses the same ways ("has no count for
purchase"); it is checked here too, and the rebuild rewrites both under the one lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg
from loguru import logger

from server.http import money
from server.purchases.rules import sql_file

# Every (user, offer, month) where the stored total and the counted sum disagree, a missing side
# being 0.00: totals missing for counted purchases, totals off, totals holding money nothing counts.
CHECK_SQL = """
WITH counted AS (
    SELECT user_id, offer_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month,
           sum(cashback_amount) AS earned
    FROM purchases
    WHERE status IN ('pending', 'confirmed') AND cashback_amount <> 0
    GROUP BY 1, 2, 3
)
SELECT user_id, offer_id, month, t.earned AS stored, coalesce(c.earned, 0) AS expected
FROM counted AS c
FULL JOIN cashback_monthly_totals AS t USING (user_id, offer_id, month)
WHERE coalesce(t.earned, 0) <> coalesce(c.earned, 0)
ORDER BY user_id, offer_id, month
"""

REBUILD_INSERT_SQL = sql_file("monthly_totals_backfill")
REBUILD_COUNTS_SQL = sql_file("purchase_counts_backfill")

# Every (user, month, status) where the kept count and a recount of the purchases disagree, a missing
# side being 0 (a count may stay at 0 after its last purchase moved away).
CHECK_COUNTS_SQL = """
WITH counted AS (
    SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, status, count(*) AS n
    FROM purchases
    GROUP BY 1, 2, 3
)
SELECT user_id, month, status, k.n AS stored, coalesce(c.n, 0) AS expected
FROM counted AS c
FULL JOIN purchase_month_counts AS k USING (user_id, month, status)
WHERE coalesce(k.n, 0) <> coalesce(c.n, 0)
ORDER BY user_id, month, status
"""

# How many rows the rebuild would write (the groups of its INSERT), for a dry run.
COUNT_REBUILD_ROWS_SQL = """
SELECT count(*) FROM (
    SELECT 1 FROM purchases
    WHERE status IN ('pending', 'confirmed') AND cashback_amount <> 0
    GROUP BY user_id, offer_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date
) AS groups
"""


@dataclass(frozen=True)
class TotalMismatch:
    user_id: str
    offer_id: str
    month: date
    stored: Decimal | None  # None: the totals row is missing
    expected: Decimal

    def describe(self) -> str:
        where = f"user {self.user_id}, offer {self.offer_id}, month {self.month:%Y-%m}"
        if self.stored is None:
            return (
                f"{where}: no total, expected {money(self.expected)} "
                "(reversing or rejecting these purchases fails with data_corrupted)"
            )
        return (
            f"{where}: earned is {money(self.stored)}, expected {money(self.expected)} "
            f"(difference {money(self.stored - self.expected)})"
        )


async def find_total_mismatches(conn: asyncpg.Connection) -> list[TotalMismatch]:
    """Every total that disagrees with its purchases, in one statement; [] when all are exact."""
    found = [
        TotalMismatch(str(row["user_id"]), str(row["offer_id"]), row["month"], row["stored"], row["expected"])
        for row in await conn.fetch(CHECK_SQL)
    ]
    for mismatch in found:
        logger.bind(
            event="business.warning",
            reason="cap_total_mismatch",
            user_id=mismatch.user_id,
            offer_id=mismatch.offer_id,
            month=mismatch.month.isoformat(),
            stored=money(mismatch.stored),
            expected=money(mismatch.expected),
        ).warning("monthly cap total does not match its purchases")
    return found


@dataclass(frozen=True)
class CountMismatch:
    user_id: str
    month: date
    status: str
    stored: int | None  # None: the count's row is missing
    expected: int

    def describe(self) -> str:
        where = f"user {self.user_id}, month {self.month:%Y-%m}, status {self.status}"
        if self.stored is None:
            return f"{where}: no count, expected {self.expected} (changing these purchases fails with data_corrupted)"
        return f"{where}: n is {self.stored}, expected {self.expected}"


async def find_count_mismatches(conn: asyncpg.Connection) -> list[CountMismatch]:
    """Every purchase count that disagrees with its purchases, in one statement; [] when all are exact."""
    found = [
        CountMismatch(str(row["user_id"]), row["month"], row["status"], row["stored"], row["expected"])
        for row in await conn.fetch(CHECK_COUNTS_SQL)
    ]
    for mismatch in found:
        logger.bind(
            event="business.warning",
            reason="purchase_count_mismatch",
            user_id=mismatch.user_id,
            month=mismatch.month.isoformat(),
            status=mismatch.status,
            stored=mismatch.stored,
            expected=mismatch.expected,
        ).warning("purchase count does not match its purchases")
    return found


async def count_rebuild_rows(conn: asyncpg.Connection) -> int:
    """The number of totals rebuild() would write now."""
    return await conn.fetchval(COUNT_REBUILD_ROWS_SQL)


async def rebuild(conn: asyncpg.Connection, *, lock_timeout_ms: int = 10_000) -> int:
    """Replace every total by the sum over its purchases, and every purchase count by a recount, in
    one transaction; the totals written.

    SHARE ROW EXCLUSIVE on purchases waits for the writers in flight and keeps out new ones (and
    other rebuilds) until the commit, so no purchase changes between the delete and the insert.
    Ingestion, rejections and reversals queue behind it for its duration. If a transaction holds
    purchases for longer than lock_timeout_ms, this gives up (asyncpg.LockNotAvailableError) and
    changes nothing, rather than stall every writer behind that transaction.
    """
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        await conn.execute("LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute("DELETE FROM cashback_monthly_totals")
        status = await conn.execute(REBUILD_INSERT_SQL)
        await conn.execute("DELETE FROM purchase_month_counts")
        await conn.execute("DELETE FROM purchase_day_counts")
        await conn.execute(REBUILD_COUNTS_SQL)
    return int(status.split()[-1])  # "INSERT 0 <rows>"

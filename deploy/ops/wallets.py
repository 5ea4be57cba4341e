"""`clicknback-ops check-wallets`: verify the wallet invariants of API.md §4.5 for every user,
and the monthly cap totals (cashback_monthly_totals, migration 4) against their purchases.

Prints each mismatch and exits 1 when there is any, 0 when every wallet matches its cashback
transactions and payouts and every monthly cap total matches its purchases. Run after restores
and in the maintenance window. A cap-total mismatch is repaired by `clicknback-ops
rebuild-cap-totals` (deploy/ops/cap_totals.py).
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from deploy.ops.settings import require
from server.db import parse_database_url
from server.purchases.cap_totals import TotalMismatch, find_total_mismatches
from server.wallets.consistency import Mismatch, find_mismatches


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-wallets",
        help="verify every wallet against its transactions and payouts, and the monthly cap totals "
        "against their purchases (exit 1 on mismatch)",
        description="Check for every user: pending = pending transactions; available = available "
        "transactions - requested and completed payouts; paid = completed payouts. Check every "
        "monthly cap total (user, offer, UTC month) = the cashback of its pending and confirmed "
        "purchases. Prints each mismatch; exits 1 when any is found, 0 otherwise. Cap-total "
        "mismatches are repaired by `clicknback-ops rebuild-cap-totals`.",
    )
    parser.add_argument("--database-url", metavar="URL",
                        help="check this database instead of DATABASE_URL (e.g. a restored scratch copy)")
    parser.set_defaults(handler=run)


async def check(database_url: str) -> tuple[list[Mismatch], list[TotalMismatch]]:
    conn = await asyncpg.connect(**parse_database_url(database_url))
    try:
        return await find_mismatches(conn), await find_total_mismatches(conn)
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    database_url = args.database_url or require(["DATABASE_URL"])["DATABASE_URL"]
    mismatches, total_mismatches = asyncio.run(check(database_url))
    for mismatch in mismatches:
        print(f"MISMATCH {mismatch.describe()}")
    for total_mismatch in total_mismatches:
        print(f"MISMATCH monthly cap total {total_mismatch.describe()}")
    if mismatches or total_mismatches:
        if total_mismatches:
            print("check-wallets: repair the monthly cap totals with `clicknback-ops rebuild-cap-totals` "
                  "(--dry-run first)")
        print(f"check-wallets: {len(mismatches) + len(total_mismatches)} mismatch(es) "
              f"({len(mismatches)} wallet, {len(total_mismatches)} monthly cap total)")
        return 1
    print("check-wallets: every wallet matches its transactions and payouts, "
          "every monthly cap total its purchases")
    return 0

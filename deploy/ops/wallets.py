"""`clicknback-ops check-wallets`: verify the wallet invariants of API.md §4.5 for every user.

Prints each mismatch and exits 1 when there is any, 0 when every wallet matches its cashback
transactions and payouts. Run after restores and in the maintenance window.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from deploy.ops.settings import require
from server.db import parse_database_url
from server.wallets.consistency import Mismatch, find_mismatches


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-wallets",
        help="verify every wallet against its transactions and payouts (exit 1 on mismatch)",
        description="Check for every user: pending = pending transactions; available = available "
        "transactions - requested and completed payouts; paid = completed payouts. Prints each "
        "mismatch; exits 1 when any is found, 0 otherwise.",
    )
    parser.add_argument("--database-url", metavar="URL",
                        help="check this database instead of DATABASE_URL (e.g. a restored scratch copy)")
    parser.set_defaults(handler=run)


async def check(database_url: str) -> list[Mismatch]:
    conn = await asyncpg.connect(**parse_database_url(database_url))
    try:
        return await find_mismatches(conn)
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    database_url = args.database_url or require(["DATABASE_URL"])["DATABASE_URL"]
    mismatches = asyncio.run(check(database_url))
    for mismatch in mismatches:
        print(f"MISMATCH {mismatch.describe()}")
    if mismatches:
        print(f"check-wallets: {len(mismatches)} mismatch(es)")
        return 1
    print("check-wallets: every wallet matches its transactions and payouts")
    return 0

"""`clicknback-ops check-wallets`: verify the wallet invariants of API.md §4.5 for every user,
and the monthly cap totals (cashback_monthly_totals, migration 4) against their purchases.

Prints each mismatch and exits 1 when there is any, 0 when every wallet matches its cashback
transactions and payouts and every monthly cap total and purchase count (the lists' totals)
matches its purchases. Run after restores and in the maintenance window. A cap-total or count
mismatch is repaired by the `rebuild-cap-totals` command of this CLI (deploy/ops/cap_totals.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from deploy.ops.backup.commands import database_name, named_database_url
from deploy.ops.settings import require, runnable
from server.db import parse_database_url
from server.purchases.cap_totals import CountMismatch, TotalMismatch, find_count_mismatches, find_total_mismatches
from server.wallets.consistency import Mismatch, find_mismatches


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-wallets",
        help="verify every wallet against its transactions and payouts, and the monthly cap totals "
        "against their purchases (exit 1 on mismatch)",
        description="Check for every user: pending = pending transactions; available = available "
        "transactions - requested and completed payouts; paid = completed payouts. Check every "
        "monthly cap total (user, offer, UTC month) = the cashback of its pending and confirmed "
        "purchases, and every purchase count (user, UTC month, status) = its purchases. Prints each "
        "mismatch; exits 1 when any is found, 0 otherwise. Cap-total and count mismatches are repaired by `python -m deploy.ops.cli rebuild-cap-totals` from the release "
        "directory (with the same ENV_FILE).",
    )
    add_database_options(parser, "check")
    parser.set_defaults(handler=run)


def add_database_options(parser: argparse.ArgumentParser, verb: str) -> None:
    """--database NAME (preferred: no password on the command line) or --database-url URL."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--database",
        metavar="NAME",
        help=f"{verb} database NAME instead of the live one: same server and credentials as "
        "DATABASE_URL, only the name differs (e.g. a restored copy)",
    )
    which.add_argument(
        "--database-url",
        metavar="URL",
        help=f"{verb} this database instead of DATABASE_URL (prefer --database: a password "
        "in a URL shows in ps and in shell history)",
    )


def chosen_database_url(args: argparse.Namespace, command: str) -> str:
    """The database the command works on; a bad NAME exits 2 with one line."""
    if args.database_url:
        return args.database_url
    database_url = require(["DATABASE_URL"])["DATABASE_URL"]
    if args.database is None:
        return database_url
    try:
        return named_database_url(database_url, args.database)
    except ValueError as error:
        print(f"{command}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def connection_failure(command: str, database_url: str, error: BaseException) -> int:
    """One line for a database that cannot be reached (never the URL: it may hold the password)."""
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        print(f"{command}: database {database_name(database_url)} does not exist on that server", file=sys.stderr)
        return 2
    print(
        f"{command}: cannot use database {database_name(database_url)}: {type(error).__name__}: {error}",
        file=sys.stderr,
    )
    return 1


async def check(database_url: str) -> tuple[list[Mismatch], list[TotalMismatch], list[CountMismatch]]:
    conn = await asyncpg.connect(**parse_database_url(database_url))
    try:
        return await find_mismatches(conn), await find_total_mismatches(conn), await find_count_mismatches(conn)
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    database_url = chosen_database_url(args, "check-wallets")
    try:
        mismatches, total_mismatches, count_mismatches = asyncio.run(check(database_url))
    except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError, OSError) as error:
        return connection_failure("check-wallets", database_url, error)
    for mismatch in mismatches:
        print(f"MISMATCH {mismatch.describe()}")
    for total_mismatch in total_mismatches:
        print(f"MISMATCH monthly cap total {total_mismatch.describe()}")
    for count_mismatch in count_mismatches:
        print(f"MISMATCH purchase count {count_mismatch.describe()}")
    if mismatches or total_mismatches or count_mismatches:
        if total_mismatches or count_mismatches:
            print(
                "check-wallets: repair the monthly cap totals and purchase counts with "
                f"`{runnable('rebuild-cap-totals --dry-run')}`, then again without --dry-run"
            )
        print(
            f"check-wallets: {len(mismatches) + len(total_mismatches) + len(count_mismatches)} mismatch(es) "
            f"({len(mismatches)} wallet, {len(total_mismatches)} monthly cap total, {len(count_mismatches)} purchase count)"
        )
        return 1
    print("check-wallets: every wallet matches its transactions and payouts, every monthly cap total its purchases")
    return 0

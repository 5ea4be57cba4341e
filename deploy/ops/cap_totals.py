"""`clicknback-ops rebuild-cap-totals`: rebuild the monthly cap totals from the purchases.

cashback_monthly_totals (migration 4) is kept exact by triggers on purchases; only writes that
bypass them (a hand-edited or deleted total, session_replication_role = replica) make it drift.
This prints the mismatches found, replaces every total by the sum over its purchases in one
transaction (purchase writes wait for it), then checks again. The purchase counts of migration 6
(the lists' totals), kept by triggers on the same table, are checked and rewritten with them. Exit 0 when no mismatch remains,
1 otherwise (or when the lock could not be taken in time: nothing was changed).
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from deploy.ops.wallets import add_database_options, chosen_database_url, connection_failure
from server.db import parse_database_url
from server.purchases.cap_totals import count_rebuild_rows, find_count_mismatches, find_total_mismatches, rebuild


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rebuild-cap-totals",
        help="rebuild the monthly cap totals from the purchases (after check-wallets reports a "
        "monthly cap total mismatch)",
        description="Use when `python -m deploy.ops.cli check-wallets` reports a `MISMATCH monthly cap "
        "total`, or when an admin reversal or the verification job's rejection fails with a "
        "data_corrupted error ('cashback_monthly_totals has no total for purchase ...', or "
        "'purchase_month_counts has no count for purchase ...') in the logs. The purchase counts are "
        "checked and rewritten with the totals. Prints the mismatches, deletes every monthly cap total and writes them again from "
        "the pending and confirmed purchases in one transaction, under a lock that makes purchase "
        "writes (ingestion, reversals, rejections) wait until it commits, then checks again. Run "
        "with --dry-run first. Exits 0 when no mismatch remains (with --dry-run: when none is found), 1 otherwise.",
    )
    add_database_options(parser, "rebuild in")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the mismatches and how many totals would be written; change nothing",
    )
    parser.set_defaults(handler=run)


async def _mismatches(conn: asyncpg.Connection) -> list[str]:
    """The mismatches of the totals and of the counts, each printed as one line."""
    lines = [f"MISMATCH monthly cap total {mismatch.describe()}" for mismatch in await find_total_mismatches(conn)]
    lines += [f"MISMATCH purchase count {mismatch.describe()}" for mismatch in await find_count_mismatches(conn)]
    for line in lines:
        print(line)
    return lines


async def _run(database_url: str, dry_run: bool) -> int:
    conn = await asyncpg.connect(**parse_database_url(database_url))
    try:
        before = await _mismatches(conn)
        print(f"rebuild-cap-totals: {len(before)} mismatch(es) before")
        if dry_run:
            stored = await conn.fetchval("SELECT count(*) FROM cashback_monthly_totals")
            print(
                f"rebuild-cap-totals: dry run: would replace {stored} total(s) by "
                f"{await count_rebuild_rows(conn)}; nothing written"
            )
            return 1 if before else 0
        try:
            written = await rebuild(conn)
        except asyncpg.LockNotAvailableError:
            print(
                "rebuild-cap-totals: purchases stayed locked by another transaction; nothing "
                "changed, run it again (pg_stat_activity shows who holds it)"
            )
            return 1
        print(f"rebuild-cap-totals: rebuilt {written} total(s) from the purchases")
        after = await _mismatches(conn)
        if after:
            print(f"rebuild-cap-totals: {len(after)} mismatch(es) after the rebuild")
            return 1
        print("rebuild-cap-totals: 0 mismatches after the rebuild")
        return 0
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    database_url = chosen_database_url(args, "rebuild-cap-totals")
    try:
        return asyncio.run(_run(database_url, args.dry_run))
    except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError, OSError) as error:
        return connection_failure("rebuild-cap-totals", database_url, error)

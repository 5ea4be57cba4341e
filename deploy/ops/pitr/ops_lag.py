"""`clicknback-ops archive-lag`: the WAL archive's lag as one JSON line (health and handoff read it).

Runs under the app's role and DATABASE_URL like the other ops commands: pg_stat_archiver needs no
privilege. Exit 0 when the archive is current (or this is a standby), 1 when it is off, late or failing.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import asyncpg

from deploy.ops.pitr.lag import DEFAULT_THRESHOLD_SECONDS, LAG_SQL, evaluate
from deploy.ops.wallets import add_database_options, chosen_database_url
from server.db import parse_database_url


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "archive-lag",
        help="age of the last archived WAL segment and the finished segments still waiting (JSON)",
    )
    add_database_options(parser, "read")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD_SECONDS,
        help=f"seconds after which waiting segments are flagged (default {DEFAULT_THRESHOLD_SECONDS})",
    )
    parser.set_defaults(handler=run)


async def read_lag(database_url: str, threshold_s: float) -> dict:
    conn = await asyncpg.connect(**parse_database_url(database_url), timeout=10)
    try:
        row = await conn.fetchrow(LAG_SQL, timeout=10)
    finally:
        await conn.close()
    return evaluate(dict(row), threshold_s)


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(read_lag(chosen_database_url(args, "archive-lag"), args.threshold))
    print(json.dumps(report, sort_keys=True))
    return 0 if report["status"] in ("ok", "standby") else 1

"""The ops CLI's PITR commands, run with the release's venv and the app's role like the others.

`archive-lag`: the WAL archive's lag as one JSON line (health and handoff read it); pg_stat_archiver
needs no privilege. Exit 0 when the archive is current (or this is a standby), 1 when it is off,
late or failing.
`check-restored --port P`: the wallet invariants and row counts of a scratch PITR copy on this host,
reached with DATABASE_URL's role and password (restored with the copy) on 127.0.0.1:P.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from deploy.ops.pitr.lag import DEFAULT_THRESHOLD_SECONDS, LAG_SQL, evaluate
from deploy.ops.pitr.replication import REPLICATION_LAG_SQL, lag_report
from deploy.ops.settings import require
from deploy.ops.stats import row_counts
from deploy.ops.wallets import add_database_options, check, chosen_database_url
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
    restored = subparsers.add_parser(
        "check-restored",
        help="wallet invariants and row counts of a scratch point-in-time copy on 127.0.0.1:PORT (JSON)",
    )
    restored.add_argument("--port", type=int, required=True)
    restored.set_defaults(handler=run_check_restored)


async def read_lag(database_url: str, threshold_s: float) -> dict:
    conn = await asyncpg.connect(**parse_database_url(database_url), timeout=10)
    try:
        row = await conn.fetchrow(LAG_SQL, timeout=10)
        standbys = [dict(r) for r in await conn.fetch(REPLICATION_LAG_SQL, timeout=10)]
    finally:
        await conn.close()
    return {**evaluate(dict(row), threshold_s), "replication": lag_report(standbys)}


def run(args: argparse.Namespace) -> int:
    report = asyncio.run(read_lag(chosen_database_url(args, "archive-lag"), args.threshold))
    print(json.dumps(report, sort_keys=True))
    return 0 if report["status"] in ("ok", "standby") and report["replication"]["status"] != "late" else 1


def scratch_database_url(database_url: str, port: int) -> str:
    """DATABASE_URL's role, password and database on 127.0.0.1:PORT (a Unix-socket `host=` dropped)."""
    parts = urlsplit(database_url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "host"])
    return urlunsplit((parts.scheme, f"{credentials}127.0.0.1:{int(port)}", parts.path, query, ""))


def run_check_restored(args: argparse.Namespace) -> int:
    url = scratch_database_url(require(["DATABASE_URL"])["DATABASE_URL"], args.port)
    wallets, totals, purchase_counts = asyncio.run(check(url))
    counts = asyncio.run(row_counts(url))
    report = {
        "wallet_mismatches": [m.describe() for m in wallets],
        "cap_total_mismatches": [m.describe() for m in totals],
        "purchase_count_mismatches": [m.describe() for m in purchase_counts],
        "row_counts": counts,
    }
    print(json.dumps(report, sort_keys=True))
    return 1 if wallets or totals or purchase_counts else 0

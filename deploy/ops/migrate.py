"""`clicknback-ops migrate`: apply, undo or report this release's Aerich migrations."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from deploy.ops.settings import require
from server import db_migrations


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="apply this release's migrations (or downgrade / report status)",
        description="Upgrade the database to this release's migration head. With --to N, undo "
        "migrations until N is the newest applied (run it from the release that has the newer "
        "migrations). With --status, print one JSON line and change nothing.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--to", type=int, metavar="N", help="downgrade so migration N is the newest applied")
    group.add_argument("--status", action="store_true", help="print code head, db head and pending as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    database_url = require(["DATABASE_URL"])["DATABASE_URL"]
    if args.status:
        status = asyncio.run(db_migrations.status(database_url))
        print(json.dumps(status.as_dict()))
        return 0
    if args.to is not None:
        try:
            undone = asyncio.run(db_migrations.downgrade_to(database_url, args.to))
        except ValueError as error:
            print(f"migrate: {error}", file=sys.stderr)
            return 2
        print(f"migrate: undone {len(undone)}: {', '.join(undone) or '-'}")
        return 0
    applied = asyncio.run(db_migrations.upgrade(database_url))
    print(f"migrate: applied {len(applied)}: {', '.join(applied) or '-'}; head {db_migrations.code_head()}")
    return 0

"""`clicknback-ops`: the VPS-side operations CLI.

Each subcommand lives in its own module under deploy/ops/, which exposes
`register(subparsers)`; cron and the laptop's invoke tasks both call this CLI, so every
operation is implemented exactly once, next to the data it works on.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES = [
    "deploy.ops.migrate",
    "deploy.ops.backup",
    "deploy.ops.wallets",
    "deploy.ops.cap_totals",
    "deploy.ops.logs",
    "deploy.ops.stats",
    "deploy.ops.maintenance",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clicknback-ops",
        description="ClickNBack operations on this host (cron and `invoke` call these).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The data-scale options of bench/api_bench.py (--data-size, --alternate, --soak, --minutes, --plans).

Defined here rather than in bench/ so their parsing is unit-tested without importing bench/
(issue #21); api_bench adds them to its parser and calls `check` after parsing.
"""

from __future__ import annotations

import argparse

DATA_SIZES = ("small", "large", "both")
MAX_SOAK_MINUTES = 60.0


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-size",
        choices=DATA_SIZES,
        default="small",
        help="small: the demo seed (default); large: 10 million purchases over 100,000 users, one of "
        "them with 100,000 (generated once, then cached under .local/bench-data); both: every selected "
        "scenario at each size, then a table of large/small ratios",
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="with --data-size both: --passes rounds, each one pass at small then one at large, every "
        "pass on a fresh cluster, so that the machine's drift over the sitting falls on both sizes alike; "
        "the ratios take the medians of the rounds, and the job backlog runs in the last round only. "
        "Four passes on one cluster (no decline) need the sizes run one after the other",
    )
    parser.add_argument(
        "--soak",
        action="store_true",
        help="instead of the scenarios: the mixed load at concurrency 64 for --minutes, with req/s "
        "and p99 per minute and each instance's RSS at the start and the end",
    )
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="length of --soak in minutes (default 10, at most 60)"
    )
    parser.add_argument(
        "--plans",
        action="store_true",
        help="also log EXPLAIN (ANALYZE, BUFFERS) of the list endpoints' queries (PostgreSQL's "
        "auto_explain, one request each) to bench/results/plans-<size>.txt",
    )


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse combinations that cannot mean anything; parser.error exits with status 2."""
    if not 0 < args.minutes <= MAX_SOAK_MINUTES:
        parser.error(f"--minutes must be more than 0 and at most {MAX_SOAK_MINUTES:g}")
    if args.soak and args.data_size == "both":
        parser.error("--soak runs at one data size: small or large")
    if args.alternate and args.data_size != "both":
        parser.error("--alternate takes turns between the sizes: use it with --data-size both")
    if args.soak and getattr(args, "passes", 1) > 1:
        parser.error("--soak is one long run: it does not take --passes")


def sizes(args: argparse.Namespace) -> list[str]:
    """The data sizes a run measures, in order."""
    return ["small", "large"] if args.data_size == "both" else [args.data_size]


def rounds(args: argparse.Namespace) -> list[tuple[int, str, bool]]:
    """(round, size, with the job backlog) for each run in order. Round 0 is a run of every pass at
    one size; with --alternate, round r is pass r of each size, and the backlog ends the last round."""
    if not args.alternate:
        return [(0, size, True) for size in sizes(args)]
    last = getattr(args, "passes", 1)
    return [(r, size, r == last) for r in range(1, last + 1) for size in sizes(args)]

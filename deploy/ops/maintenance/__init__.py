"""`clicknback-ops maintenance`: the monthly maintenance window (operation-plan §6.1).

Steps, in order: VACUUM (ANALYZE) and REINDEX ... CONCURRENTLY table by table, archive-logs,
verify-backup, check-wallets, and a vulnerability audit of this release's requirements.lock. A step
starts only when its estimate still fits before the window's end (default 03:00 UTC, as cron starts
it at 02:00; `--until HH:MM` or `--budget MINUTES` for a run by hand); a running step is stopped at
the end. The report lists every step with its status and duration, including the skipped ones.

With several hosts, cron starts this on each: the first host of the inventory runs every step, the
others pass --no-shared-steps and only archive their own logs and audit their own release (they do
not connect to the database). A PostgreSQL advisory lock also keeps two runs that both want the
database, backup and wallet steps (cron and a run by hand) from doing them at once.

A step that did not do its job is `skipped` with the reason (e.g. the dependency audit without
pip-audit's database), never `ok`.

On a deployed host (ENV_FILE set), every run leaves its record in <deploy root>/state/
maintenance-last.json: when it ran, how it ended, each step. `invoke handoff` shows it.

Exit statuses: 0 no step failed (skipped and partial steps are named in the report); 1 a step
failed; 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.ops.maintenance import model
from deploy.ops.maintenance.model import StepResult
from deploy.ops.settings import require
from deploy.reports import steps_table

if TYPE_CHECKING:  # asyncpg is imported when the window runs, not by every ops command
    import asyncpg

ADVISORY_LOCK_KEY = 727001  # any constant shared by every host: "the maintenance window runs"
ADVISORIES = Path(__file__).resolve().parent / "advisories.json"
SHARED_STEPS = {"vacuum-analyze", "reindex", "verify-backup", "check-wallets"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "maintenance",
        help="the monthly window: vacuum, reindex, archive logs, verify backup, wallets, audit",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--until", metavar="HH:MM", help="end of the window, UTC (default 03:00)")
    group.add_argument("--budget", type=float, metavar="MINUTES", help="run for at most this many minutes from now")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=model.STEP_NAMES,
        metavar="STEP",
        help=f"leave a step out (repeatable): {', '.join(model.STEP_NAMES)}",
    )
    parser.add_argument(
        "--host-label", metavar="NAME", help="passed to archive-logs (this host's folder in the bucket)"
    )
    parser.add_argument(
        "--no-shared-steps",
        action="store_true",
        help="leave the database, backup and wallet steps to another host (cron and `invoke "
        "maintenance` pass this to every host but the first)",
    )
    parser.add_argument("--json", action="store_true", help="end with the report as one JSON line")
    parser.set_defaults(handler=run)


def _now() -> datetime:
    return datetime.now(UTC)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deploy.ops.cli", *args]


def run_cli_step(args: list[str], timeout: float) -> tuple[str, str]:
    """Run another ops command; its output is echoed indented; (status, last line)."""
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "failed", f"stopped at the window's end after {timeout:.0f}s"
    output = (result.stdout + result.stderr).strip()
    for line in output.splitlines():
        print(f"    | {line}", flush=True)
    last = output.splitlines()[-1] if output else ""
    return ("ok" if result.returncode == 0 else "failed"), last[:300]


async def _tables(conn: asyncpg.Connection) -> list[str]:
    return [
        r["tablename"]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    ]


async def per_table(conn: asyncpg.Connection, sql: str, end: datetime, per_table_estimate: float) -> tuple[str, str]:
    """Run `sql` (with {table}) table by table while time remains; partial when the window closes."""
    tables = await _tables(conn)
    done = 0
    for table in tables:
        if not model.fits(_now(), end, per_table_estimate):
            return "partial", f"{done} of {len(tables)} tables before the window's end; not done: " + ", ".join(
                tables[done:]
            )
        await conn.execute(sql.format(table=f'public."{table}"'))
        done += 1
    return "ok", f"{done} tables"


def dependency_audit(timeout: float) -> tuple[str, str]:
    """pip-audit when it and its database are reachable; always the team's advisory file."""
    lock = Path("requirements.lock")
    if not lock.is_file():
        return "failed", "no requirements.lock in the release directory"
    pins = model.parse_lock(lock.read_text())
    notes = []
    ran, vulnerabilities = False, 0
    executable = shutil.which("pip-audit")
    if executable is None:
        notes.append(
            "pip-audit: skipped: not installed on this host (pip install pip-audit, or run "
            "`pip-audit -r requirements.lock` on the laptop; see docs/dependencies.md)"
        )
    else:
        try:
            result = subprocess.run(
                model.pip_audit_command([executable], str(lock)),
                capture_output=True,
                text=True,
                timeout=max(5.0, min(timeout, 300.0)),
            )
            if result.returncode in (0, 1) and result.stdout.strip().startswith(("{", "[")):
                vulnerabilities, lines = model.summarise_pip_audit(result.stdout)
                ran = True
                for line in lines:
                    print(f"    | VULNERABLE {line}", flush=True)
                notes.append(
                    f"pip-audit: {vulnerabilities} known vulnerabilit"
                    f"{'y' if vulnerabilities == 1 else 'ies'} in {len(pins)} pins"
                )
            else:
                reason = (result.stderr.strip().splitlines() or ["no output"])[-1][:200]
                notes.append(f"pip-audit: skipped: vulnerability database unreachable or error ({reason})")
        except subprocess.TimeoutExpired:
            notes.append("pip-audit: skipped: timed out (no network to the vulnerability database?)")
    updated, advisories = model.load_advisories(ADVISORIES)
    findings = model.check_advisories(pins, advisories)
    for finding in findings:
        print(f"    | VULNERABLE {finding.describe()}", flush=True)
    notes.append(
        f"advisory file ({len(advisories)} advisories, updated {updated}): "
        f"{len(findings)} affected pin(s) of {len(pins)}"
    )
    return model.audit_status(ran, vulnerabilities, len(findings)), "; ".join(notes)


async def maintain(
    end: datetime, skip: set[str], host_label: str | None, shared_steps: bool = True
) -> list[StepResult]:
    import asyncpg

    from server.db import parse_database_url

    results: list[StepResult] = []
    # A host without the shared steps never touches the database: its audit and logs still run
    # when the database is down.
    wants_database = shared_steps and bool(SHARED_STEPS - skip)
    conn = None
    if wants_database:
        database_url = require(["DATABASE_URL"])["DATABASE_URL"]
        conn = await asyncpg.connect(**parse_database_url(database_url), timeout=10)
    try:
        holds_lock = conn is not None and await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
        steps: dict[str, Callable] = {
            "vacuum-analyze": lambda: per_table(conn, "VACUUM (ANALYZE) {table}", end, 2),
            "reindex": lambda: per_table(conn, "REINDEX TABLE CONCURRENTLY {table}", end, 5),
            "archive-logs": lambda: run_cli_step(
                _cli("archive-logs", *(["--host-label", host_label] if host_label else [])),
                model.seconds_left(_now(), end),
            ),
            "verify-backup": lambda: run_cli_step(_cli("verify-backup"), model.seconds_left(_now(), end)),
            "check-wallets": lambda: run_cli_step(_cli("check-wallets"), model.seconds_left(_now(), end)),
            "dependency-audit": lambda: dependency_audit(model.seconds_left(_now(), end)),
        }
        for name, description, estimate in model.STEPS:
            if name in skip:
                results.append(StepResult(name, "skipped", 0.0, "left out with --skip"))
                continue
            if name in SHARED_STEPS and not shared_steps:
                results.append(StepResult(name, "skipped", 0.0, "runs on another host (--no-shared-steps)"))
                continue
            if name in SHARED_STEPS and not holds_lock:
                results.append(
                    StepResult(name, "skipped", 0.0, "another host runs the window's shared steps (advisory lock held)")
                )
                continue
            if not model.fits(_now(), end, estimate):
                results.append(
                    StepResult(name, "skipped", 0.0, f"needs ~{estimate:.0f}s, the window ends {end:%H:%M:%S} UTC")
                )
                continue
            print(f"maintenance: {name}: {description}", flush=True)
            started = time.monotonic()
            try:
                outcome = steps[name]()
                status, detail = await outcome if asyncio.iscoroutine(outcome) else outcome
            except (asyncpg.PostgresError, OSError) as error:
                status, detail = "failed", f"{type(error).__name__}: {error}"
            results.append(StepResult(name, status, time.monotonic() - started, detail))
            print(f"maintenance: {name}: {status} in {results[-1].seconds:.1f}s", flush=True)
    finally:
        if conn is not None:
            await conn.close()  # also releases the advisory lock
    return results


def run(args: argparse.Namespace) -> int:
    import asyncpg

    try:
        end = model.window_end(_now(), args.until, args.budget)
    except ValueError as error:
        print(f"maintenance: {error}", file=sys.stderr)
        return 2
    started_at = _now()
    print(
        f"maintenance: started {started_at:%Y-%m-%d %H:%M:%S} UTC, window ends {end:%Y-%m-%d %H:%M:%S} UTC "
        f"(release {os.path.basename(os.getcwd())})",
        flush=True,
    )
    started = time.monotonic()
    shared_steps = not args.no_shared_steps
    try:
        results = asyncio.run(maintain(end, set(args.skip), args.host_label, shared_steps))
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        problem = f"cannot reach the database: {type(error).__name__}: {error}"
        print(f"maintenance: {problem}", file=sys.stderr)
        _record(model.run_record(started_at, _now(), [], shared_steps, problem))
        return 1
    print("maintenance report")
    print(steps_table([r.to_json() for r in results]))
    summary = model.summary_line(results, time.monotonic() - started)
    print(summary)
    _record(model.run_record(started_at, _now(), results, shared_steps, summary))
    if args.json:
        print(json.dumps({"window_end": end.isoformat(), "steps": [r.to_json() for r in results]}, sort_keys=True))
    return model.exit_status(results)


def _record(record: dict) -> None:
    """Leave the run's record for the handoff; a run whose record cannot be written says so."""
    path = model.record_path(os.environ.get("ENV_FILE"))
    if path is None:
        return
    try:
        model.write_record(path, record)
    except OSError as error:
        print(f"maintenance: could not record this run in {path}: {error.strerror or error}", file=sys.stderr)

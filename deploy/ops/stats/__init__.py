"""`clicknback-ops stats` and `clicknback-ops row-counts`: what this host and its database look like.

`stats` prints one JSON object for the laptop's `invoke stats` to merge: host CPU, load, memory and
disk; CPU and memory of each app instance (from /proc); the release; the database's size,
connections by state, cache hit ratio, largest tables with dead tuples and, when the
pg_stat_statements extension is there, the slowest statements; and the request logs of the
window (default the last 24 h) as latency histograms per route (see model.py beside this file).

`row-counts` prints exact row counts of every table (the drill compares them before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from deploy.ops.settings import require
from deploy.ops.stats import model, proc
from server.config import load_environment

# asyncpg and the app's database helpers are imported where the database is used, so the other
# ops commands (and `stats --only-logs`) start without them.

CPU_SAMPLE_SECONDS = 0.5


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="host, app instance, database and request-log figures as one JSON object",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument(
        "--window-hours", type=positive_hours, default=24.0, help="request logs of the last N hours (default 24)"
    )
    parser.add_argument("--end", type=iso_time, metavar="ISO-8601", help="end of the log window (default: now)")
    parser.add_argument("--logs-dir", metavar="DIR", help="log folder (default: logs/ beside ENV_FILE)")
    parser.add_argument(
        "--deploy-root",
        metavar="DIR",
        help="deploy root whose instances and disk to report (default: two levels above ENV_FILE)",
    )
    parser.add_argument("--no-database", action="store_true", help="skip the database figures")
    parser.add_argument("--only-logs", action="store_true", help="only the request-log window (fast)")
    parser.set_defaults(handler=run)

    parser = subparsers.add_parser("row-counts", help="exact row count of every table, as JSON")
    parser.set_defaults(handler=run_row_counts)


def positive_hours(text: str) -> float:
    """argparse type of --window-hours: a window must end after it starts."""
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not hours > 0 or hours == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of hours")
    return hours


def iso_time(text: str) -> datetime:
    """argparse type of --end: an ISO-8601 time (UTC unless it carries an offset)."""
    try:
        return model.parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time (e.g. 2026-11-27T12:00:00Z)") from None


# -- host and instances ----------------------------------------------------------------------


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _instance_pids(deploy_root: Path) -> dict[int, int]:
    """pid -> port of the app instances whose working directory is under this deploy root."""
    found = {}
    root = str(deploy_root.resolve())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = _read(f"/proc/{entry}/cmdline").split("\0")
            port = proc.instance_port(cmdline)
            if port is None:
                continue
            cwd = os.path.realpath(f"/proc/{entry}/cwd")
        except OSError:  # gone meanwhile, or not ours
            continue
        if cwd == root or cwd.startswith(root + "/"):
            found[int(entry)] = port
    return found


def collect_system(deploy_root: Path) -> tuple[dict, list[dict]]:
    pids = _instance_pids(deploy_root)
    ticks_before = {}
    for pid in pids:
        try:
            ticks_before[pid] = proc.parse_pid_cpu_ticks(_read(f"/proc/{pid}/stat"))
        except OSError:
            pass
    cpu_before = proc.parse_cpu_times(_read("/proc/stat"))
    started = time.monotonic()
    time.sleep(CPU_SAMPLE_SECONDS)  # a measurement interval, not synchronisation
    elapsed = time.monotonic() - started
    cpu_after = proc.parse_cpu_times(_read("/proc/stat"))
    clock_ticks = os.sysconf("SC_CLK_TCK")
    uptime = float(_read("/proc/uptime").split()[0])
    instances = []
    for pid, port in sorted(pids.items(), key=lambda item: item[1]):
        try:
            stat = _read(f"/proc/{pid}/stat")
            ticks = proc.parse_pid_cpu_ticks(stat)
            rss = proc.parse_rss_bytes(_read(f"/proc/{pid}/status"))
        except OSError:
            continue
        start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        busy = (ticks - ticks_before.get(pid, ticks)) / clock_ticks
        instances.append(
            {
                "port": port,
                "pid": pid,
                "cpu_percent": round(100.0 * busy / elapsed, 1),
                "rss_bytes": rss,
                "uptime_s": round(uptime - start_ticks / clock_ticks, 1),
            }
        )
    disk = shutil.disk_usage(deploy_root)
    system = {
        "cpu_percent": proc.cpu_percent(cpu_before, cpu_after),
        "cpus": os.cpu_count(),
        "load": proc.parse_loadavg(_read("/proc/loadavg")),
        "memory": proc.parse_meminfo(_read("/proc/meminfo")),
        "disk": {
            "path": str(deploy_root),
            "total_bytes": disk.total,
            "used_bytes": disk.used,
            "used_percent": round(100.0 * disk.used / disk.total, 1) if disk.total else 0.0,
        },
        "uptime_s": round(uptime),
    }
    return system, instances


def read_release() -> dict | None:
    """RELEASE.json of the release this CLI runs from (the working directory)."""
    try:
        return json.loads(Path("RELEASE.json").read_text())
    except (OSError, ValueError):
        return None


# -- logs ------------------------------------------------------------------------------------


def log_files(logs_dir: Path, since: datetime) -> list[Path]:
    """The app's JSON log files (live, rotated, compressed) written to at or after `since`."""
    if not logs_dir.is_dir():
        return []
    files = []
    for path in sorted(logs_dir.glob("app-*.log*")):
        if path.name.endswith(".partial") or not path.is_file():
            continue
        if datetime.fromtimestamp(path.stat().st_mtime, UTC) >= since:
            files.append(path)
    return files


def analyse_logs(logs_dir: Path, start: datetime, end: datetime) -> model.LogWindow:
    window = model.LogWindow(start, end)
    for path in log_files(logs_dir, start):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            window.add_lines(handle)
    return window


# -- database --------------------------------------------------------------------------------

TABLES_SQL = """
SELECT relname AS table, pg_total_relation_size(relid) AS total_bytes, n_live_tup AS live_tuples,
       n_dead_tup AS dead_tuples, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze
FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC, relname LIMIT 10
"""
STATEMENTS_SQL = """
SELECT query, calls, mean_exec_time AS mean_ms, total_exec_time AS total_ms
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY mean_exec_time DESC LIMIT 5
"""


async def database_stats(database_url: str) -> dict:
    import asyncpg

    from server.db import parse_database_url

    conn = await asyncpg.connect(**parse_database_url(database_url), timeout=10)
    try:
        name, size = await conn.fetchrow("SELECT current_database(), pg_database_size(current_database())")
        connections = {
            row["state"]: row["count"]
            for row in await conn.fetch(
                "SELECT coalesce(state, 'unknown') AS state, count(*) AS count FROM pg_stat_activity "
                "WHERE datname = current_database() AND backend_type = 'client backend' GROUP BY 1"
            )
        }
        ratio = await conn.fetchval(
            "SELECT sum(blks_hit)::float8 / nullif(sum(blks_hit) + sum(blks_read), 0) "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        tables = []
        for row in await conn.fetch(TABLES_SQL):
            table = dict(row)
            for key in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"):
                table[key] = table[key].isoformat() if table[key] else None
            tables.append(table)
        statements = None
        statements_note = "pg_stat_statements is not installed"
        if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"):
            try:
                statements = [
                    {
                        "query": " ".join(model.mask_sql_literals(r["query"]).split())[:300],
                        "calls": r["calls"],
                        "mean_ms": round(r["mean_ms"], 3),
                        "total_ms": round(r["total_ms"], 3),
                    }
                    for r in await conn.fetch(STATEMENTS_SQL)
                ]
                statements_note = ""
            except asyncpg.PostgresError as error:  # installed but not preloaded
                statements_note = f"pg_stat_statements unusable: {error}"
        return {
            "name": name,
            "size_bytes": size,
            "connections": connections,
            "cache_hit_ratio": None if ratio is None else round(ratio, 4),
            "tables": tables,
            "slowest_statements": statements,
            "statements_note": statements_note,
        }
    finally:
        await conn.close()


async def row_counts(database_url: str) -> dict[str, int]:
    import asyncpg

    from server.db import parse_database_url

    conn = await asyncpg.connect(**parse_database_url(database_url), timeout=10)
    try:
        names = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        ]
        return {name: await conn.fetchval(f'SELECT count(*) FROM public."{name}"') for name in names}
    finally:
        await conn.close()


# -- commands --------------------------------------------------------------------------------


def _default_root(env: dict[str, str]) -> Path:
    env_file = env.get("ENV_FILE")
    return Path(env_file).resolve().parent.parent if env_file else Path.cwd()


def run(args: argparse.Namespace) -> int:
    env = load_environment()
    end = args.end or datetime.now(UTC)
    start, end = model.window_ending(end, args.window_hours)
    deploy_root = Path(args.deploy_root) if args.deploy_root else _default_root(env)
    logs_dir = Path(args.logs_dir) if args.logs_dir else deploy_root / "shared" / "logs"
    report: dict = {
        "collected_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "logs": analyse_logs(logs_dir, start, end).to_json(),
    }
    if not args.only_logs:
        report["system"], report["instances"] = collect_system(deploy_root)
        report["release"] = read_release()
        if not args.no_database:
            import asyncpg

            database_url = require(["DATABASE_URL"])["DATABASE_URL"]
            try:
                report["database"] = asyncio.run(database_stats(database_url))
            except (TimeoutError, OSError, asyncpg.PostgresError) as error:
                report["database"] = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(report, sort_keys=True))
    return 0


def run_row_counts(args: argparse.Namespace) -> int:
    database_url = require(["DATABASE_URL"])["DATABASE_URL"]
    print(json.dumps(asyncio.run(row_counts(database_url)), sort_keys=True))
    return 0

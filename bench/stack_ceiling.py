"""The stack's ceiling: the smallest app on our stack, measured exactly as bench/api_bench.py measures the service.

    python bench/stack_ceiling.py [--scenario plain,row] [--duration 5] [--warmup 1] [--concurrency 64]
                                  [--instances 2] [--direct] [--upstream-keepalive 0] [--pool-max 20]
                                  [--users 5000] [--json FILE]

The issue targets ("/users/me at least 3,000 req/s with p99 <= 30 ms at concurrency 64 on a 2-core
machine") are far above what the service measures here. This tells how much of that gap is the
stack on this machine rather than our code: the same front, the same load and the same columns as
api_bench, against bench/minimal_app.py, a Sanic app run exactly as production runs an instance
(single process, uvloop, no access log, asyncpg pool of 2..20) with two routes:

  plain  GET /plain: {"status": "alive"} through orjson, no I/O (the framework's floor; compare
         with the service's health_live)
  row    GET /row: one users row by primary key through pool.acquire() + fetchrow, as JSON (the
         floor of any authenticated request; compare with users_me, which also verifies a JWT,
         writes a JSON access log line and runs request/response middleware)

It starts a throwaway PostgreSQL cluster (devtools/local_postgres.py) with one `users` table shaped
like ours and `--users` rows, `--instances` app processes on loopback and, by default, nginx in front
with production's own configuration (bench/front.py, upstream keepalive included); `--upstream-keepalive N`
is the same experiment as in api_bench, `--instances 1 --direct` points wrk straight at one instance,
`--pool-max N` changes the app's pool max size (DB_POOL_MAX_SIZE, which the service reads too). Each scenario and level
is warmed up, then measured with wrk (bench/api_bench.run_wrk), and printed in api_bench's columns:
req/s, p50, p99, errors, cpu/req (app + nginx + PostgreSQL, ms per request) and `others` (share of the
CPUs used by processes the bench did not start). The target column shows whether the floor alone
would meet the target of the service scenario it stands under (row: users_me's). Every run is bounded
(warm-up + duration per scenario and level) and everything started is stopped at the end.
docs/benchmarks.md, "The stack's ceiling on this machine", explains how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench import api_bench  # noqa: E402
from bench.api_bench import (  # noqa: E402
    TABLE_HEADER,
    Context,
    Scenario,
    add_database_over_option,
    add_instances_over_option,
    add_keep_autogroup_option,
    bench_cpu_groups,
    instance_database_url,
    instance_sockets,
    instance_transport,
    measure,
    row_line,
    shape_line,
    start_front,
    start_servers,
    target_verdict,
    tear_down,
    wrk_seconds,
)
from bench.front import NginxFront  # noqa: E402
from bench.kernel import production_scheduler  # noqa: E402
from bench.minimal_app import POOL_MAX_SIZE, POOL_MIN_SIZE  # noqa: E402
from devtools.local_postgres import PRODUCTION_DURABILITY, LocalPostgres  # noqa: E402

DATABASE = "ceiling"
DEFAULT_USERS = 5000
# Each minimal route, the path wrk requests, and the service scenario (bench/api_bench.py) it is the floor of.
ROUTES = {"plain": ("/plain", "health_live"), "row": ("/row", "users_me")}
# As long as an argon2id hash (server/auth/passwords.py, library defaults), so rows are as wide as ours.
PASSWORD_PLACEHOLDER_LENGTH = 97


def schema_sql() -> str:
    """The users table shaped like ours (migrations/models/0_20261127000000_init.py), without its CHECKs."""
    return """CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(254) NOT NULL CONSTRAINT uq_users_email UNIQUE,
    hashed_password text NOT NULL,
    role varchar(16) NOT NULL DEFAULT 'user',
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);"""


def seed_sql(users: int) -> str:
    """`users` rows (1 in 50 an admin), then ANALYZE so the planner knows the table from the first query."""
    if users < 1:
        raise ValueError("the minimal app reads one user at start-up: seed at least 1")
    return (
        f"INSERT INTO users (email, hashed_password, role) "
        f"SELECT 'ceiling' || i || '@example.test', repeat('x', {PASSWORD_PLACEHOLDER_LENGTH}), "
        f"CASE WHEN i % 50 = 0 THEN 'admin' ELSE 'user' END FROM generate_series(1, {users}) AS i;\n"
        f"ANALYZE users;"
    )


def prepare_database(cluster: LocalPostgres, users: int) -> None:
    """Create and seed the bench database in a started cluster."""
    cluster.create_database(DATABASE)
    cluster.psql(schema_sql() + "\n" + seed_sql(users), DATABASE)


def app_argv(port: int, socket: str = "") -> list[str]:
    """One minimal instance, listening as api_bench's service instances do (started from PROJECT_ROOT)."""
    listen = ["--unix", socket] if socket else ["--host", "127.0.0.1"]
    return [sys.executable, "-m", "bench.minimal_app", *listen, "--port", str(port)]


def app_env(database_url: str, log_file: Path, pool_max: int = POOL_MAX_SIZE) -> dict[str, str]:
    """The minimal app writes no log file (it logs nothing per request); `log_file` is unused."""
    return {"DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", "DB_POOL_MAX_SIZE": str(pool_max)}


def scenarios(names: list[str]) -> list[Scenario]:
    unknown = [name for name in names if name not in ROUTES]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(ROUTES)}")
    return [Scenario(name, api_bench._static("GET", ROUTES[name][0]), path=ROUTES[name][0]) for name in names]


def floor_verdict(scenario: str, concurrency: int, figures: dict) -> str:
    """Would the floor alone meet the target of the service scenario it stands under? '' if none applies."""
    service = ROUTES[scenario][1]
    verdict = target_verdict(service, concurrency, figures)
    return f"{service}'s {verdict}" if verdict else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="plain,row", help="comma-separated: plain, row (default both)")
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="measured seconds per scenario and level (whole seconds, at least 1)",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of discarded load before each measurement (0 = none)"
    )
    parser.add_argument(
        "--concurrency",
        default="64",
        help="comma-separated connection counts (default 64, the level of the issue targets)",
    )
    parser.add_argument("--instances", type=int, default=2, help="minimal app processes (default 2, as production)")
    parser.add_argument(
        "--direct", action="store_true", help="no nginx: wrk straight at the single instance (needs --instances 1)"
    )
    parser.add_argument(
        "--upstream-keepalive",
        type=int,
        default=0,
        help="experiment: idle connections nginx "
        "keeps to the instances (0, the default: production's own setting, "
        "deploy.commands.UPSTREAM_KEEPALIVE)",
    )
    parser.add_argument(
        "--users", type=int, default=DEFAULT_USERS, help=f"rows in the users table (default {DEFAULT_USERS})"
    )
    parser.add_argument(
        "--pool-max",
        type=int,
        default=POOL_MAX_SIZE,
        help="experiment: the app's asyncpg "
        f"pool max size (default {POOL_MAX_SIZE}, production's DB_POOL_MAX_SIZE default)",
    )
    add_instances_over_option(parser)
    add_database_over_option(parser)
    add_keep_autogroup_option(parser)
    parser.add_argument("--json", dest="json_out", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    if args.direct and args.instances != 1:
        parser.error("--direct measures one instance: use it with --instances 1")
    if args.direct and args.upstream_keepalive:
        parser.error("--upstream-keepalive applies to nginx, not to --direct")
    if args.pool_max < POOL_MIN_SIZE:
        parser.error(f"--pool-max must be at least the pool's min size, {POOL_MIN_SIZE}")
    if args.users < 1:
        parser.error("--users must be at least 1")
    args.scenarios = [part.strip() for part in args.scenario.split(",") if part.strip()]
    try:
        scenarios(args.scenarios)
    except ValueError as error:
        parser.error(str(error))
    try:
        args.levels = [int(part) for part in args.concurrency.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--concurrency takes whole numbers: {args.concurrency!r}")
    if not args.levels or min(args.levels) < 1:
        parser.error("--concurrency needs at least one level, each at least 1")
    args.warmup = wrk_seconds(args.warmup) if args.warmup > 0 else 0
    args.duration = wrk_seconds(args.duration)
    return args


def shape(args: argparse.Namespace, load_at_start: tuple[float, float, float]) -> dict:
    """api_bench's shape fields (so shape_line prints the same header), plus what the app is."""
    return {
        "app": "minimal (bench/minimal_app.py)",
        "users": args.users,
        "pool_max": args.pool_max,
        "instances": args.instances,
        "front": "direct" if args.direct else "nginx",
        "upstream_keepalive": 0 if args.direct else args.upstream_keepalive,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(value, 2) for value in load_at_start],
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "database_over": args.database_over,
        "instances_over": instance_transport(args),
    }


def app_line(run_shape: dict) -> str:
    """The line above api_bench's header: what app was measured, its pool, its data."""
    pool = f"asyncpg pool {POOL_MIN_SIZE}..{run_shape['pool_max']}" + (
        " (as production)" if run_shape["pool_max"] == POOL_MAX_SIZE else " (NOT as production)"
    )
    return f"app: {run_shape['app']}, not the service; {pool}; users table of {run_shape['users']} rows"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (timeout, CI cancel) unwinds like Ctrl-C, so `finally` stops everything we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load_at_start = os.getloadavg()  # before our own set-up adds load
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not args.direct and not os.path.exists(nginx_binary):
        print("nginx is not installed: apt-get install -y nginx-light (or use --instances 1 --direct)", file=sys.stderr)
        return 2
    with production_scheduler(keep=args.keep_autogroup) as scheduler:
        return run(args, {**shape(args, load_at_start), "scheduler": scheduler}, nginx_binary)


def run(args: argparse.Namespace, run_shape: dict, nginx_binary: str) -> int:
    """Set up PostgreSQL, the minimal app's instances and nginx, measure, tear down."""
    workdir = Path(tempfile.mkdtemp(prefix="cnb-ceiling-"))
    os.chmod(workdir, 0o755)  # nginx workers run as nobody when the bench runs as root
    cluster = LocalPostgres(workdir / "pg")
    servers: list[tuple[subprocess.Popen, int]] = []
    front: NginxFront | None = None
    results = []
    finished = False
    try:
        cluster.start(PRODUCTION_DURABILITY)
        prepare_database(cluster, args.users)
        database_url = instance_database_url(cluster, DATABASE, args.database_over)
        servers = start_servers(
            database_url,
            args.instances,
            workdir,
            argv=app_argv,
            env=lambda url, log_file: app_env(url, log_file, args.pool_max),
            socket_for=instance_sockets(workdir, instance_transport(args)),
        )
        url, front = start_front(servers, args, workdir, nginx_binary)
        cpu_groups = bench_cpu_groups(cluster, servers, front)
        print(app_line(run_shape))
        print(shape_line(run_shape))
        print(TABLE_HEADER)
        ctx = Context(url)
        for scenario in scenarios(args.scenarios):
            for level in args.levels:
                row = measure(url, ctx, scenario, level, args, cpu_groups)
                row["target"] = floor_verdict(scenario.name, level, row)
                row["target_met"] = None if not row["target"] else row["target"].endswith(": met")
                results.append(row)
                print(row_line(row), flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps([{**run_shape, **row} for row in results], indent=2))
        finished = True
    finally:
        tear_down(front, servers, cluster, workdir, finished)
    return 0


if __name__ == "__main__":
    sys.exit(main())

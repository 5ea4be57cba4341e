"""Developer tasks: run the service locally, load the demo seed, migrate, test, benchmark."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from invoke import task

from deploy.local_postgres import LocalPostgres, LocalPostgresError
from deploy.tasks import OperatorTask

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The embedded PostgreSQL and the dev signing key of `invoke serve` (git-ignored).
LOCAL_DIR = Path(os.environ.get("CLICKNBACK_LOCAL_DIR") or PROJECT_ROOT / ".local")
DEMO_REJECTION_MERCHANT = "f0000000-0000-0000-0000-000000000001"


def _dev_secret() -> str:
    """A signing key for local runs, made once and kept in .local/ (mode 0600, never in git)."""
    path = LOCAL_DIR / "dev-signing-key"
    if not path.exists():
        LOCAL_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _embedded_postgres() -> tuple[LocalPostgres, str]:
    cluster = LocalPostgres(LOCAL_DIR / "postgres")
    created = cluster.ensure_initialised()
    print(
        f"[serve] {'creating' if created else 'starting'} embedded PostgreSQL in {cluster.base_dir} "
        f"on 127.0.0.1:{cluster.port}",
        flush=True,
    )
    cluster.start()
    if not cluster.database_exists("clicknback"):
        cluster.create_database("clicknback")
    return cluster, cluster.dsn("clicknback")


@task(
    help={
        "host": "address to bind (default 127.0.0.1)",
        "port": "port to serve on (default 8000)",
        "seed": "load the demo seed when the database has none yet (default on)",
        "log_format": "console (default) or json",
    }
)
def serve(c, host="127.0.0.1", port=8000, seed=True, log_format="console"):
    """Run the API locally. Without DATABASE_URL it starts its own PostgreSQL under .local/.

    That PostgreSQL runs from the system's binaries, or from the copy the dev requirements bundle
    (pgserver) on a machine with none. CLICKNBACK_LOCAL_DIR moves .local/ elsewhere.

    Applies the migrations, loads the demo seed once, and serves with OpenAPI docs at /docs.
    Ctrl-C stops the server and the embedded database it started.
    """
    from server import db_migrations
    from server.seed import load_demo_seed_sync

    cluster = None
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        try:
            cluster, database_url = _embedded_postgres()
        except LocalPostgresError as error:
            sys.exit(f"[serve] {error}")
    applied = asyncio.run(db_migrations.upgrade(database_url))
    print(f"[serve] migrations applied: {len(applied)} (head {db_migrations.code_head()})", flush=True)
    if seed and load_demo_seed_sync(database_url):
        print("[serve] demo seed loaded (every demo user's password: Str0ng!Pass)", flush=True)
    env = dict(os.environ, DATABASE_URL=database_url, LOG_FORMAT=log_format)
    env.setdefault("OAUTH_HASH_KEY", _dev_secret())
    env.setdefault("REJECTION_MERCHANT_ID", DEMO_REJECTION_MERCHANT)
    print(f"[serve] http://{host}:{port}  (docs: http://{host}:{port}/docs)  Ctrl-C to stop", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", host, "--port", str(port)], cwd=PROJECT_ROOT, env=env
    )
    try:
        server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
        if cluster is not None:
            cluster.stop()
            print("[serve] embedded PostgreSQL stopped", flush=True)


@task(
    help={
        "database_url": "database to seed (default: $DATABASE_URL, else the embedded one under .local/)",
        "reset": "empty every business table first and load the seed again (the audit log is kept)",
    }
)
def seed(c, database_url="", reset=False):
    """Load the API.md §6 demo seed into a database (once, or again with --reset)."""
    from server import db_migrations
    from server.seed import load_demo_seed_sync

    database_url = database_url or os.environ.get("DATABASE_URL", "")
    if not database_url:
        _, database_url = _embedded_postgres()
    asyncio.run(db_migrations.upgrade(database_url))
    loaded = load_demo_seed_sync(database_url, reset=reset)
    print("demo seed loaded" if loaded else "demo seed already present (use --reset to load it again)")


@task(
    help={
        "status": "only print code head, database head and pending migrations",
        "to": "downgrade so migration number TO is the newest applied",
    }
)
def migrate(c, status=False, to=None):
    """Apply (or undo, or report) migrations on $DATABASE_URL, locally."""
    argv = [sys.executable, "-m", "deploy.ops.cli", "migrate"]
    if status:
        argv.append("--status")
    elif to is not None:
        argv += ["--to", str(to)]
    sys.exit(subprocess.call(argv, cwd=PROJECT_ROOT))


@task(
    help={
        "k": "only tests matching this pytest -k expression",
        "path": "test path (default: all of tests/)",
        "x": "stop at the first failure",
    }
)
def test(c, k="", path="tests", x=False):
    """Run the whole test suite (real PostgreSQL, sshd, nginx and S3 endpoint, all on loopback)."""
    argv = [sys.executable, "-m", "pytest", path, "-q"]
    if k:
        argv += ["-k", k]
    if x:
        argv.append("-x")
    sys.exit(subprocess.call(argv, cwd=PROJECT_ROOT))


@task(
    klass=OperatorTask,
    zero_ok=("warmup",),
    help={
        "scenario": "run only scenarios whose name contains this (default: all)",
        "duration": "measured seconds per scenario and concurrency level (default 5)",
        "warmup": "seconds of discarded load before each measurement, 0 or more (default 1)",
        "concurrency": "comma-separated concurrency levels (default 16,64)",
        "instances": "server processes behind nginx, as production runs them (default 2)",
        "direct": "wrk straight at one instance, no nginx (profiling; needs --instances 1)",
        "instances_over": "how nginx reaches the instances: unix (default, as production) or tcp",
        "database_over": "how the instances reach PostgreSQL: socket (default, as docs/deploy.md recommends) or tcp",
        "keep_autogroup": "leave the kernel's scheduler autogroup as it is (default: off for the run when root, "
        "as provision --system sets production's hosts)",
        "json": "also write the figures to this JSON file",
        "data_size": "small (the demo seed, default), large (10 million purchases, generated once then cached) or both, "
        "with large/small ratios",
        "soak": "instead of the scenarios: the mixed load at concurrency 64 for --minutes, req/s per minute and RSS",
        "minutes": "length of --soak in minutes (default 10)",
        "plans": "also save the list endpoints' query plans to bench/results/plans-<size>.txt",
    },
)
def bench(
    c,
    scenario="",
    duration=5.0,
    warmup=1.0,
    concurrency="16,64",
    instances=2,
    direct=False,
    instances_over="unix",
    database_over="socket",
    keep_autogroup=False,
    json="",
    data_size="small",
    soak=False,
    minutes=10.0,
    plans=False,
):
    """Benchmark the API as production runs it (nginx over 2 instances, real PostgreSQL); see docs/benchmarks.md."""
    argv = [
        sys.executable,
        "-m",
        "bench.api_bench",
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--concurrency",
        concurrency,
        "--instances",
        str(instances),
        "--instances-over",
        instances_over,
        "--database-over",
        database_over,
        "--data-size",
        data_size,
    ]
    if scenario:
        argv += ["--scenario", scenario]
    if direct:
        argv.append("--direct")
    if keep_autogroup:
        argv.append("--keep-autogroup")
    if json:
        argv += ["--json", json]
    if soak:
        argv += ["--soak", "--minutes", str(minutes)]
    if plans:
        argv.append("--plans")
    sys.exit(subprocess.call(argv, cwd=PROJECT_ROOT))


TASKS = [serve, seed, migrate, test, bench]

"""Developer tasks: run the service locally, load the demo seed, migrate, test, benchmark."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

from invoke import task

from deploy.tasks import OperatorTask
from devtools.local_postgres import LocalPostgres, LocalPostgresError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The embedded PostgreSQL and the dev signing key of `invoke serve` (git-ignored).
LOCAL_DIR = Path(os.environ.get("CLICKNBACK_LOCAL_DIR") or PROJECT_ROOT / ".local")
DEMO_REJECTION_MERCHANT = "f0000000-0000-0000-0000-000000000001"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
SERVER_STOP_SECONDS = 30  # the server's own drain is shorter; past this it is killed


def _dev_secret() -> str:
    """A signing key for local runs, made once and kept in .local/ (mode 0600, never in git)."""
    path = LOCAL_DIR / "dev-signing-key"
    if not path.exists():
        LOCAL_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _embedded_postgres(cluster: LocalPostgres | None = None) -> tuple[LocalPostgres, str]:
    cluster = cluster or LocalPostgres(LOCAL_DIR / "postgres")
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


def _claim_cluster(cluster: LocalPostgres) -> bool:
    """Whether this serve stops the embedded cluster when it ends: yes unless another serve that is
    still running uses it (two terminals, two ports), whose server must not lose its database."""
    owner_file = cluster.base_dir / "serve.pid"
    cluster.base_dir.mkdir(parents=True, exist_ok=True)
    try:
        owner = int(owner_file.read_text())
        # Still a serve (not a recycled pid) and not this one: that serve keeps the cluster.
        if owner != os.getpid() and b"serve" in Path(f"/proc/{owner}/cmdline").read_bytes():
            return False
    except (OSError, ValueError):
        pass  # no owner, or it is gone (killed): this serve adopts the cluster
    owner_file.write_text(str(os.getpid()))
    return True


def _port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, checked before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use: pick another with "
                    f"`make serve PORT=8300` (or `invoke serve --port 8300`)"
                )
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def _die_with_parent(parent_pid: int, stop_signal: int) -> None:
    """`stop_signal` to this process when its parent dies (Linux PR_SET_PDEATHSIG), so nothing that
    serve started lives on under PID 1 after serve is killed; and at once if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, stop_signal, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), stop_signal)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_server(server: subprocess.Popen | None) -> None:
    if server is None or server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=SERVER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


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
    Ctrl-C, SIGTERM, SIGHUP or the death of the process that started it stops the server and the
    embedded database it started. A busy port is one line and exit status 1, before anything starts.
    """
    from server import db_migrations
    from server.seed import load_demo_seed_sync

    problem = _port_problem(host, port)
    if problem:
        sys.exit(f"[serve] {problem}")
    # Stopped by Ctrl-C, `kill`, a closed terminal or its parent's death (make's, a shell's), serve
    # always stops the server and the embedded database it started, not only on Ctrl-C.
    _die_with_parent(os.getppid(), signal.SIGHUP)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(stop_signal, _interrupt)
    cluster, owns_cluster, server, status = None, False, None, 0
    try:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            cluster = LocalPostgres(LOCAL_DIR / "postgres")
            owns_cluster = _claim_cluster(cluster)  # before it starts: a signal may come during the start
            try:
                _, database_url = _embedded_postgres(cluster)
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
        parent = os.getpid()
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", host, "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            preexec_fn=lambda: _die_with_parent(parent, signal.SIGTERM),
        )
        status = server.wait()
    except KeyboardInterrupt as stop:
        print(f"[serve] stopping ({stop or 'SIGINT'})", flush=True)
    finally:
        # A second signal must not cut the clean-up short; each step of it is bounded.
        for stop_signal in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(stop_signal, signal.SIG_IGN)
        _stop_server(server)
        if cluster is not None and owns_cluster:
            cluster.stop()
            (cluster.base_dir / "serve.pid").unlink(missing_ok=True)
            print("[serve] embedded PostgreSQL stopped", flush=True)
    if status:
        sys.exit(f"[serve] the server exited with status {status}")


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
        "path": "test path (default: all of tests/ and the bench's own tests in bench/tests/)",
        "x": "stop at the first failure",
    }
)
def test(c, k="", path="", x=False):
    """Run the whole test suite (real PostgreSQL, sshd, nginx and S3 endpoint, all on loopback)."""
    # No path: pytest's testpaths (pyproject), so the bench's own tests run with the suite.
    argv = [sys.executable, "-m", "pytest", *([path] if path else []), "-q"]
    if k:
        argv += ["-k", k]
    if x:
        argv.append("-x")
    sys.exit(subprocess.call(argv, cwd=PROJECT_ROOT))


@task(
    klass=OperatorTask,
    zero_ok=("warmup",),
    help={
        "scenario": "run only scenarios whose name contains this, or =NAME for that one alone (default: all)",
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
        "alternate": "with --data-size both: --passes rounds of one pass at each size on fresh clusters, so that "
        "the machine's drift falls on both sizes alike (for the ratios; not for judging a decline)",
        "soak": "instead of the scenarios: the mixed load at concurrency 64 for --minutes, req/s per minute and RSS",
        "minutes": "length of --soak in minutes (default 10)",
        "plans": "also save the list endpoints' query plans to bench/results/plans-<size>.txt",
        "passes": "run the scenarios N times back to back on the same cluster and servers, then a summary "
        "per scenario: medians, ranges and the change from the first pass to the last (default 1)",
        "standby": "none (default), async or sync: a streaming standby of the bench's PostgreSQL, built as "
        "`invoke standby` builds one; sync makes each commit wait for it, as --synchronous does",
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
    alternate=False,
    soak=False,
    minutes=10.0,
    plans=False,
    passes=1,
    standby="none",
):
    """Benchmark the API as production runs it (nginx over 2 instances, real PostgreSQL); see docs/benchmarks.md."""
    options = dict(locals())
    del options["c"]
    sys.exit(subprocess.call(bench_argv(**options), cwd=PROJECT_ROOT))


def bench_argv(
    scenario: str = "",
    duration: float = 5.0,
    warmup: float = 1.0,
    concurrency: str = "16,64",
    instances: int = 2,
    direct: bool = False,
    instances_over: str = "unix",
    database_over: str = "socket",
    keep_autogroup: bool = False,
    json: str = "",
    data_size: str = "small",
    alternate: bool = False,
    soak: bool = False,
    minutes: float = 10.0,
    plans: bool = False,
    passes: int = 1,
    standby: str = "none",
) -> list[str]:
    """bench/api_bench.py's command line for `invoke bench`'s options (its own parser checks them)."""
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
        "--passes",
        str(passes),
        "--standby",
        standby,
    ]
    if scenario:
        argv += ["--scenario", scenario]
    if direct:
        argv.append("--direct")
    if keep_autogroup:
        argv.append("--keep-autogroup")
    if json:
        argv += ["--json", json]
    if alternate:
        argv.append("--alternate")
    if soak:
        argv += ["--soak", "--minutes", str(minutes)]
    if plans:
        argv.append("--plans")
    return argv


TASKS = [serve, seed, migrate, test, bench]

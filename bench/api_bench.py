"""API benchmark: the service as production runs it, against a real PostgreSQL with the demo seed.

    python bench/api_bench.py [--scenario NAME] [--duration 5] [--warmup 1] [--concurrency 16,64]
                              [--instances 2] [--direct] [--upstream-keepalive 0]
                              [--instances-over unix|tcp] [--database-over socket|tcp] [--passes N]
                              [--json FILE] [--data-size small|large|both] [--plans]
                              [--soak [--minutes 10]] [--standby none|async|sync]

Starts a throwaway PostgreSQL cluster, migrates it, loads the demo seed, starts `python -m server`
instance(s) on loopback and, by default, nginx in front of them with the production configuration
(two single-process instances behind nginx, as on the 2-core VPS; see bench/front.py). Each
scenario and concurrency level is first warmed up with the same wrk script (figures discarded), then
measured with wrk (C, so the load generator takes as little of the 2 cores as possible), printing
requests/s, p50, p99, errors and, where an issue sets one, whether the target is met. Every run is
bounded: `warmup` + `duration` seconds per scenario and level. `--instances 1 --direct` points wrk
straight at one instance (no nginx), for profiling. Run it on an idle machine: the header prints
the load average at start so a reader can tell. docs/benchmarks.md explains the figures.

Data scale (issue #24): `--data-size large` runs on 10 million purchases (bench/data_size.py,
generated once and cached), `both` runs every selected scenario at each size and prints the ratios;
the job-backlog run (bench/backlog.py) ends each size; `--soak` replaces the scenarios with a long
mixed run (bench/soak.py); `--plans` saves the list endpoints' query plans (bench/plans.py).
`--standby async|sync` gives the cluster a streaming standby first (bench/standby.py, issue #25).
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench import backlog, cpu, data_size, passes, plans, scale_scenarios, soak, standby  # noqa: E402
from bench.front import NginxFront, bench_host  # noqa: E402
from bench.kernel import production_scheduler  # noqa: E402
from bench.stalls import StallWatch  # noqa: E402
from datascale import options as scale_options  # noqa: E402
from deploy.commands import UPSTREAM_KEEPALIVE, postgres_memory  # noqa: E402
from deploy.inventory import HOST_DEFAULTS, INSTANCE_LISTEN  # noqa: E402
from devtools.local_postgres import PRODUCTION_DURABILITY, LocalPostgres, free_port  # noqa: E402

SEED_PASSWORD = "Str0ng!Pass"
ALICE = "b7e2c1a2-4f3a-4e2b-9c1a-8d2e3f4b5c6d"
SHOPLY = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
BENCH_USERS = 32

# A Lua postamble shared by every scenario: print the figures as one JSON line.
REPORT_LUA = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.status + summary.errors.timeout
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "p50_us": %d, "p99_us": %d, "errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), errors, summary.errors.status))
end
"""


@dataclass
class Scenario:
    name: str
    lua: str
    path: str = "/"
    issue: str = ""
    levels: tuple[int, ...] = ()  # concurrency levels of its own, overriding --concurrency


@dataclass(frozen=True)
class Target:
    """An issue's target for one scenario at one concurrency; met only with no errors as well."""

    p99_ms: float
    min_rps: float | None = None
    concurrency: int = 64

    def label(self) -> str:
        throughput = f">={self.min_rps:.0f} rps, " if self.min_rps is not None else ""
        return f"{throughput}p99<={self.p99_ms:g}ms"

    def met(self, figures: dict) -> bool:
        return (
            figures["errors"] == 0
            and figures.get("requests", 1) > 0  # none completed in the run: every one took longer
            and figures["p99_us"] <= self.p99_ms * 1000
            and (self.min_rps is None or figures["rps"] >= self.min_rps)
        )


# The targets of issues #2, #3 and #4 ("on a 2-core machine, at concurrency 64"); #24 raised
# ingestion's from #4's 1,500 req/s and 80 ms.
TARGETS = {
    "users_me": Target(p99_ms=30, min_rps=3000),
    "health_live_during_login_flood": Target(p99_ms=20),
    "offers_active": Target(p99_ms=40, min_rps=3000),
    "purchase_ingest": Target(p99_ms=60, min_rps=2000),
    "wallet_summary": Target(p99_ms=30, min_rps=3000),
    # Issue #24: logins alone, the mix with 2% logins, and logins while that mix runs.
    "login": Target(p99_ms=300, concurrency=4),
    "mixed_with_logins": Target(p99_ms=1000, min_rps=1500),
    "login_during_mix": Target(p99_ms=1000, concurrency=4),
    **{
        name: Target(p99_ms=p99, concurrency=scale_scenarios.LEVEL)
        for name, p99 in scale_scenarios.TARGET_P99_MS.items()
    },
}


def target_verdict(scenario: str, concurrency: int, figures: dict) -> str:
    """The target column: '' when no target applies, else the target and 'met' or 'NOT met'."""
    target = TARGETS.get(scenario)
    if target is None or target.concurrency != concurrency:
        return ""
    return f"{target.label()}: {'met' if target.met(figures) else 'NOT met'}"


@dataclass
class Context:
    base_url: str
    tokens: dict[str, str] = field(default_factory=dict)


def _static(method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None) -> str:
    lines = [f'wrk.method = "{method}"']
    for key, value in (headers or {}).items():
        lines.append(f'wrk.headers["{key}"] = "{value}"')
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    lines.append(f'wrk.path = "{path}"')
    return "\n".join(lines)


def scenarios(ctx: Context) -> list[Scenario]:
    user = {"Authorization": f"Bearer {ctx.tokens['user']}"}
    admin = {"Authorization": f"Bearer {ctx.tokens['admin']}"}
    logins = ", ".join(
        json.dumps(json.dumps({"email": f"bench{i}@example.test", "password": SEED_PASSWORD}))
        for i in range(BENCH_USERS)
    )
    login_lua = f"""
local bodies = {{{logins}}}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/api/v1/auth/login", nil, bodies[(n % #bodies) + 1])
end
"""
    ingest_tokens = ", ".join(json.dumps(t) for t in ctx.tokens["bench_users"])
    ingest_ids = ", ".join(json.dumps(u) for u in ctx.tokens["bench_user_ids"])
    # The bench users' tokens and ids, a request counter and a run-unique prefix for external ids:
    # the start of every script that records purchases.
    users_lua = f"""
local tokens = {{{ingest_tokens}}}
local ids = {{{ingest_ids}}}
local n = 0
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
"""
    ingest_lua = (
        users_lua
        + f"""setup = function(thread) thread:set("tid", tostring(math.random(1, 1e9))) end
request = function()
  n = n + 1
  local i = (n % #tokens) + 1
  local body = '{{"external_id": "bench-' .. prefix .. '-' .. (tid or '0') .. '-' .. n .. '", "user_id": "' .. ids[i] ..
    '", "merchant_id": "{SHOPLY}", "amount": "10.00", "currency": "EUR"}}'
  return wrk.format("POST", "/api/v1/purchases", {{["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[i]}}, body)
end
"""
    )
    mixed_lua = (
        users_lua
        + f"""request = function()
  n = n + 1
  local i = (n % #tokens) + 1
  local auth = {{["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"}}
  local pick = n % 10
  if pick < 4 then return wrk.format("GET", "/api/v1/offers/active?limit=20", auth) end
  if pick < 6 then return wrk.format("GET", "/api/v1/users/me/wallet", auth) end
  if pick < 8 then return wrk.format("GET", "/api/v1/users/me/purchases?limit=10", auth) end
  local body = '{{"external_id": "mixed-' .. prefix .. '-' .. n .. '", "user_id": "' .. ids[i] ..
    '", "merchant_id": "{SHOPLY}", "amount": "25.00", "currency": "EUR"}}'
  return wrk.format("POST", "/api/v1/purchases", auth, body)
end
"""
    )
    # Issue #24's mix: 40% active offers, 30% wallet, 20% purchases, 8% health, 2% logins.
    mixed_with_logins_lua = (
        users_lua
        + f"""
local logins = {{{logins}}}
request = function()
  n = n + 1
  local i = (n % #tokens) + 1
  local auth = {{["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"}}
  local pick = n % 50
  if pick < 20 then return wrk.format("GET", "/api/v1/offers/active?limit=20", auth) end
  if pick < 35 then return wrk.format("GET", "/api/v1/users/me/wallet", auth) end
  if pick < 45 then
    local body = '{{"external_id": "mixlogin-' .. prefix .. '-' .. n .. '", "user_id": "' .. ids[i] ..
      '", "merchant_id": "{SHOPLY}", "amount": "25.00", "currency": "EUR"}}'
    return wrk.format("POST", "/api/v1/purchases", auth, body)
  end
  if pick < 49 then return wrk.format("GET", "/health/live") end
  return wrk.format("POST", "/api/v1/auth/login", {{["Content-Type"] = "application/json"}}, logins[(n % #logins) + 1])
end
"""
    )
    return [
        Scenario("health_live", _static("GET", "/health/live"), issue="#2"),
        Scenario("health_ready", _static("GET", "/health/ready"), issue="#2"),
        Scenario("users_me", _static("GET", "/api/v1/users/me", user), issue="#2"),
        Scenario("login", login_lua, issue="#2"),
        Scenario("health_live_during_login_flood", _static("GET", "/health/live"), issue="#2"),
        Scenario("offers_active", _static("GET", "/api/v1/offers/active?limit=20", user), issue="#3"),
        Scenario("merchants_admin", _static("GET", "/api/v1/merchants?limit=20", admin), issue="#3"),
        Scenario("purchase_ingest", ingest_lua, issue="#4"),
        Scenario("wallet_summary", _static("GET", "/api/v1/users/me/wallet", user), issue="#4"),
        Scenario("mixed", mixed_lua, issue="#4"),
        Scenario("mixed_with_logins", mixed_with_logins_lua, issue="#24"),
        # Logins measured alone while the mix above runs at concurrency 64 (BACKGROUND_LOAD).
        Scenario("login_during_mix", login_lua, issue="#24"),
        *[
            Scenario(
                name,
                _static("GET", path, {"Authorization": f"Bearer {ctx.tokens[token]}"}),
                issue="#24",
                levels=(scale_scenarios.LEVEL,),
            )
            for name, path, token in scale_scenarios.specs()
        ],
    ]


# Scenarios measured while another scenario loads the service: (that scenario, its concurrency).
BACKGROUND_LOAD = {
    "health_live_during_login_flood": ("login", 32),
    "login_during_mix": ("mixed_with_logins", 64),
}


def scenario_selected(name: str, selection: str) -> bool:
    """`--scenario`: empty selects all; otherwise the name must contain one of the comma-separated
    parts, or equal a part written `=name` (`=mixed` without `mixed_with_logins`)."""
    parts = [part.strip() for part in selection.split(",") if part.strip()]
    return not parts or any(name == part[1:] if part.startswith("=") else part in name for part in parts)


def wrk_seconds(seconds: float) -> int:
    """wrk takes whole seconds; every run lasts at least one."""
    return max(1, round(seconds))


def wrk_argv(url: str, script: str, concurrency: int, seconds: float, threads: int = 1) -> list[str]:
    return [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{wrk_seconds(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        script,
        url,
    ]


def run_wrk(url: str, lua: str, concurrency: int, duration: float, threads: int = 1) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + "\n" + REPORT_LUA)
    try:
        result = subprocess.run(
            wrk_argv(url, script.name, concurrency, duration, threads),
            capture_output=True,
            text=True,
            timeout=wrk_seconds(duration) + 60,
        )
    finally:
        os.unlink(script.name)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH "):
            figures = json.loads(line[len("BENCH ") :])
            figures["rps"] = figures["requests"] / figures["seconds"] if figures["seconds"] else 0.0
            return figures
    raise RuntimeError(f"wrk gave no figures: {result.stdout}\n{result.stderr}")


def prepare(base_url: str, database_url: str) -> Context:
    import asyncio

    import asyncpg

    from server.auth.passwords import hash_sync
    from server.db import parse_database_url

    async def create_users() -> list[str]:
        conn = await asyncpg.connect(**parse_database_url(database_url))
        try:
            hashed = hash_sync(SEED_PASSWORD)
            ids = []
            for i in range(BENCH_USERS):
                row = await conn.fetchrow(
                    "INSERT INTO users (email, hashed_password) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE "
                    "SET hashed_password = EXCLUDED.hashed_password RETURNING id",
                    f"bench{i}@example.test",
                    hashed,
                )
                await conn.execute("INSERT INTO wallets (user_id) VALUES ($1) ON CONFLICT DO NOTHING", row["id"])
                ids.append(str(row["id"]))
            # Let every bench user ingest without ever reaching the monthly cap.
            await conn.execute("UPDATE offers SET monthly_cap_per_user = 99999999 WHERE merchant_id = $1", SHOPLY)
            return ids
        finally:
            await conn.close()

    ids = asyncio.run(create_users())
    ctx = Context(base_url)
    # Tokens signed with the instances' key, not logins: each login is a deliberately costly argon2
    # hash, and logging every bench user in would load the machine before any scenario runs;
    # `login` measures logins.
    heavy_id = scale_scenarios.prepare_heavy(database_url, hash_sync(SEED_PASSWORD))
    bench_emails = [f"bench{i}@example.test" for i in range(BENCH_USERS)]
    signed = scale_scenarios.signed_tokens(
        database_url,
        server_env(database_url, Path(os.devnull))["OAUTH_HASH_KEY"],
        ["alice@clicknback.com", "carol@clicknback.com", scale_scenarios.HEAVY_EMAIL, *bench_emails],
    )
    ctx.tokens["user"] = signed["alice@clicknback.com"]
    ctx.tokens["admin"] = signed["carol@clicknback.com"]
    ctx.tokens["bench_users"] = [signed[email] for email in bench_emails]
    ctx.tokens["bench_user_ids"] = ids
    ctx.tokens["heavy"], ctx.tokens["heavy_id"] = signed[scale_scenarios.HEAVY_EMAIL], heavy_id
    return ctx


def server_env(database_url: str, log_file: Path) -> dict[str, str]:
    """What each instance gets on top of our environment.

    Mirrors deploy/templates/supervisor-program.conf.tmpl (JSON lines on stdout and in LOG_FILE,
    unbuffered), with bench-only changes: no .env file, a throwaway signing key, no verification job
    (its background work would vary between runs), and login throttling out of the way of the flood.
    """
    return {
        "DATABASE_URL": database_url,
        "OAUTH_HASH_KEY": "bench-signing-key-" + "x" * 32,
        "LOG_FORMAT": "json",
        "LOG_FILE": str(log_file),
        "PYTHONUNBUFFERED": "1",
        "ENV_FILE": "/dev/null",
        "SANIC_REAL_IP_HEADER": "x-real-ip",
        "PURCHASE_JOB_ENABLED": "false",
        "LOGIN_MAX_FAILURES": "1000000",
    }


def server_argv(port: int, socket: str = "") -> list[str]:
    """One instance of the service, as supervisor starts it in production: on its Unix socket
    (deploy.commands.instance_listen_args), or on loopback TCP when `socket` is empty."""
    listen = ["--unix", socket] if socket else ["--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "server", *listen]


def ready(port: int, socket: str) -> bool:
    """Whether the instance answers GET /health/ready with 200, through its socket or its port."""
    try:
        if socket:
            with httpx.Client(transport=httpx.HTTPTransport(uds=socket)) as client:
                return client.get("http://localhost/health/ready", timeout=2).status_code == 200
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_servers(
    database_url: str,
    instances: int,
    log_dir: Path,
    argv: Callable[[int, str], list[str]] = server_argv,
    env: Callable[[str, Path], dict[str, str]] = server_env,
    socket_for: Callable[[int], str] | None = None,
) -> list[tuple[subprocess.Popen, int]]:
    """Start `instances` single-process servers as production does; returns once each is ready.

    `argv(port, socket)` and `env(database_url, log_file)` default to the service; another app can
    pass its own. `socket_for(port)` is the Unix socket of each instance (None:
    loopback TCP on `port`). Each must answer GET /health/ready with 200 once ready."""
    servers = []
    for index in range(instances):
        port = free_port()
        output = (log_dir / f"server-{index}.out").open("wb")
        process_env = {**os.environ, **env(database_url, log_dir / f"app-{port}.log")}
        socket = socket_for(port) if socket_for else ""
        process = subprocess.Popen(
            argv(port, socket), cwd=PROJECT_ROOT, env=process_env, stdout=output, stderr=subprocess.STDOUT
        )
        servers.append((process, port))
    for process, port in servers:
        socket = socket_for(port) if socket_for else ""
        url = socket or f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ready(port, socket):
                break
            if process.poll() is not None:
                raise RuntimeError(f"server exited early; see {log_dir}")
            time.sleep(0.1)  # poll interval; the loop waits on readiness itself
        else:
            raise RuntimeError(f"server at {url} never became ready; see {log_dir}")
    return servers


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def shape_line(shape: dict) -> str:
    """The header: what was measured, on what, and how busy the machine was when the bench started."""
    if shape["front"] == "nginx":
        keepalive = shape["upstream_keepalive"]
        differences = [f"upstream keepalive {keepalive}"] if keepalive and keepalive != UPSTREAM_KEEPALIVE else []
        if shape["instances_over"] != HOST_DEFAULTS["instance_listen"]:
            differences.append(f"instances over {shape['instances_over']}")
        front = (
            f"behind nginx ({', '.join(differences)}, NOT as production)"
            if differences
            else "behind nginx (production config)"
        )
    else:
        front = "wrk direct, no nginx (profiling shape, not production)"
    load = " ".join(f"{value:.2f}" for value in shape["load_average_at_start"])
    warmup = f"after a {shape['warmup_s']}s warm-up" if shape["warmup_s"] else "no warm-up"
    database = (
        "PostgreSQL over its Unix socket" if shape["database_over"] == "socket" else "PostgreSQL over loopback TCP"
    ) + ", commits flushed to disk (as production)"
    if "ram_kb" in shape:
        buffers = postgres_memory.memory_settings(shape["ram_kb"])["shared_buffers"]
        database += f", shared_buffers {buffers // 1024} MB (as provision sizes it)"
    return (
        f"shape: {shape['instances']} instance(s) {front}; {database}; {shape['cpus']} CPUs"
        + (f" ({shape['cpu_model']})" if shape.get("cpu_model") else "")
        + "; "
        f"{shape['scheduler']}; load average at start {load}; {shape['duration_s']}s per run, {warmup}"
        + ("" if shape.get("data_size", "small") == "small" else f"; data size {shape['data_size']}")
        + (f"; {standby.label(shape['standby'])}" if shape.get("standby", "none") != "none" else "")
    )


TABLE_HEADER = (
    f"{'scenario':34} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
    f"{'cpu/req':>8} {'others':>7} {'stall':>6}  target"
)


def row_line(row: dict) -> str:
    """One measured run. cpu/req: CPU ms per request of instances + nginx + PostgreSQL; others: share
    of all CPUs that processes outside the bench used meanwhile; stall: the machine's longest pause
    (bench/stalls.py), in whole ms."""
    cpu_ms = "-" if row.get("service_cpu_ms") is None else f"{row['service_cpu_ms']:.3f}"
    others = "-" if row.get("others_cpu") is None else f"{row['others_cpu']:.0%}"
    stall = "-" if row.get("max_stall_ms") is None else f"{row['max_stall_ms']:.0f}"
    return (
        f"{row['scenario']:34} {row['concurrency']:>5} {row['rps']:>9.0f} {row['p50_us'] / 1000:>8.2f} "
        f"{row['p99_us'] / 1000:>8.2f} {row['errors']:>7} {cpu_ms:>8} {others:>7} {stall:>6}  "
        f"{row['target']}"
    ).rstrip()


def add_instances_over_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instances-over",
        choices=INSTANCE_LISTEN,
        default=HOST_DEFAULTS["instance_listen"],
        help="how nginx reaches the instances: a Unix socket each (the default, as production's "
        "inventory instance_listen) or loopback TCP; --direct always uses TCP",
    )


def instance_transport(args: argparse.Namespace) -> str:
    """ "unix" or "tcp": wrk cannot speak to a Unix socket, so --direct is TCP."""
    return "tcp" if args.direct else args.instances_over


def add_database_over_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-over",
        choices=("socket", "tcp"),
        default="socket",
        help="how the instances reach PostgreSQL: its Unix socket (the default, as docs/deploy.md "
        "recommends when PostgreSQL runs on the app's host) or loopback TCP",
    )


def add_keep_autogroup_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-autogroup",
        action="store_true",
        help="leave the kernel's scheduler autogroup as "
        "the machine has it; by default a run as root turns it off for its duration, as "
        "provision --system does on production's hosts (bench/kernel.py)",
    )


def instance_database_url(cluster: LocalPostgres, database: str, over: str) -> str:
    """The DATABASE_URL the instances get: through the cluster's socket folder, or loopback TCP."""
    return cluster.socket_dsn(database) if over == "socket" else cluster.dsn(database)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario",
        default="",
        help="only scenarios whose name contains this; several "
        "comma-separated parts select every scenario that contains any of them, in the usual order; "
        "=NAME selects that scenario alone",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="measured seconds per scenario and level (whole seconds, at least 1)",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of discarded load before each measurement (0 = none)"
    )
    parser.add_argument("--concurrency", default="16,64", help="comma-separated connection counts")
    parser.add_argument("--instances", type=int, default=2, help="server processes (default 2, as production)")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="no nginx: wrk straight at the single instance (needs --instances 1; for profiling)",
    )
    parser.add_argument(
        "--upstream-keepalive",
        type=int,
        default=0,
        help="experiment: idle connections nginx "
        f"keeps to each instance (default 0: production's own keepalive {UPSTREAM_KEEPALIVE})",
    )
    add_instances_over_option(parser)
    add_database_over_option(parser)
    parser.add_argument(
        "--stalls",
        action="store_true",
        help="fill the stall column: the machine's longest "
        "pause per run, from a SCHED_FIFO watcher waking every 10 ms (needs root; its own wake-ups "
        "raise the p99 it sits beside, so it is off by default)",
    )
    parser.add_argument(
        "--passes",
        "--repeat",
        dest="passes",
        type=int,
        default=1,
        metavar="N",
        help="run the selected scenarios N times back to back on the same cluster and servers (nothing "
        "reset: rows ingested by pass 1 are there in pass N), then per scenario and level the median "
        "and range of req/s and p99, the change from the first pass to the last (a fall of req/s "
        "beyond 10%% flagged) and how many passes met the target (bench/passes.py)",
    )
    add_keep_autogroup_option(parser)
    parser.add_argument(
        "--standby",
        choices=standby.MODES,
        default="none",
        help="give the cluster a streaming standby (a second local cluster, built as `invoke standby` "
        "builds one): async, or sync as `invoke standby --synchronous` (each commit waits for it)",
    )
    parser.add_argument("--json", dest="json_out", default="", help="also write the figures to this JSON file")
    scale_options.add_options(parser)
    # Not an option: --alternate's rounds turn the job backlog off in all but the last (main).
    parser.set_defaults(backlog=True)
    args = parser.parse_args(argv)
    scale_options.check(args, parser)
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    if args.direct and args.instances != 1:
        parser.error("--direct measures one instance: use it with --instances 1")
    if args.direct and args.upstream_keepalive:
        parser.error("--upstream-keepalive applies to nginx, not to --direct")
    args.warmup = wrk_seconds(args.warmup) if args.warmup > 0 else 0
    args.duration = wrk_seconds(args.duration)
    return args


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
    levels = [int(part) for part in args.concurrency.split(",") if part.strip()]
    shape = {
        "instances": args.instances,
        "front": "direct" if args.direct else "nginx",
        "upstream_keepalive": 0 if args.direct else args.upstream_keepalive,
        "cpus": os.cpu_count(),
        "cpu_model": cpu.machine_model(),
        "load_average_at_start": [round(value, 2) for value in load_at_start],
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "database_over": args.database_over,
        "instances_over": instance_transport(args),
        "standby": args.standby,
        # PostgreSQL's memory is what `provision --system` would set on a host with this RAM.
        "ram_kb": postgres_memory.host_ram_kb(),
    }
    with production_scheduler(keep=args.keep_autogroup) as scheduler:
        by_size: dict[str, list[dict]] = {}
        for round_, size, with_backlog in scale_options.rounds(args):
            once = args
            if round_:
                print(f"round {round_} of {args.passes}: {size} data", flush=True)
                once = argparse.Namespace(**{**vars(args), "passes": 1, "backlog": with_backlog})
            rows = run(once, {**shape, "scheduler": scheduler, "data_size": size}, levels, nginx_binary)
            by_size.setdefault(size, []).extend(
                {**row, "pass": round_} if round_ and "pass" in row else row for row in rows
            )
    if args.alternate:
        for size, rows in by_size.items():
            print(f"\n{size} data, over the rounds (each on a fresh cluster)")
            print("\n".join(passes.summary(rows)))
    if len(by_size) > 1:
        print("\n".join(ratio_table(by_size["small"], by_size["large"])))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([row for rows in by_size.values() for row in rows], indent=2))
    return 0


def ratio_table(small: list[dict], large: list[dict]) -> list[str]:
    """Per scenario and level, the medians over the passes at each size and large/small. Issue #24:
    at 10 million purchases every scenario stays within 20% of its small-data req/s (ratio >= 0.80)."""

    def medians(rows: list[dict]) -> dict[tuple[str, int], tuple[float, float]]:
        runs: dict[tuple[str, int], list[dict]] = {}
        for row in rows:
            if "scenario" in row and "concurrency" in row:
                runs.setdefault((row["scenario"], row["concurrency"]), []).append(row)
        return {
            key: (median(r["rps"] for r in group), median(r["p99_us"] / 1000 for r in group))
            for key, group in runs.items()
        }

    before, after = medians(small), medians(large)
    lines = [
        f"{'small vs large data':34} {'conc':>5} {'req/s small':>12} {'req/s large':>12} {'ratio':>6} "
        f"{'p99 ms small':>13} {'p99 ms large':>13}  within 20%"
    ]
    for key, (rps_small, p99_small) in before.items():
        if key not in after:
            continue
        rps_large, p99_large = after[key]
        ratio = rps_large / rps_small if rps_small else 0.0
        lines.append(
            f"{key[0]:34} {key[1]:>5} {rps_small:>12,.0f} {rps_large:>12,.0f} {ratio:>6.2f} "
            f"{p99_small:>13.2f} {p99_large:>13.2f}  {'yes' if ratio >= 0.8 else 'NO'}"
        )
    return lines


def run(args: argparse.Namespace, shape: dict, levels: list[int], nginx_binary: str) -> list[dict]:
    """Set up PostgreSQL, the instances and nginx, measure every selected scenario, tear down."""
    workdir = Path(tempfile.mkdtemp(prefix="cnb-bench-"))
    os.chmod(workdir, 0o755)
    large = shape["data_size"] == "large"
    cluster = data_size.cluster_from_cache(workdir / "pg") if large else LocalPostgres(workdir / "pg")
    servers: list[tuple[subprocess.Popen, int]] = []
    front: NginxFront | None = None
    stalls: StallWatch | None = None
    replica: LocalPostgres | None = None
    results = []
    finished = False
    try:
        cluster.start(f"{PRODUCTION_DURABILITY} {postgres_memory.server_options(shape['ram_kb'])}")
        if not large:  # the cached cluster has it, generated
            cluster.create_database("bench")
        database_url = cluster.dsn("bench")  # migrations, seed and set-up
        import asyncio

        from server import db_migrations
        from server.seed import load_demo_seed

        asyncio.run(db_migrations.upgrade(database_url))
        asyncio.run(load_demo_seed(database_url))
        replica = standby.start(cluster, workdir / "standby", args.standby)
        servers = start_servers(
            instance_database_url(cluster, "bench", args.database_over),
            args.instances,
            workdir,
            socket_for=instance_sockets(workdir, instance_transport(args)),
        )
        url, front = start_front(servers, args, workdir, nginx_binary)
        ctx = prepare(url, database_url)
        cpu_groups = bench_cpu_groups(cluster, servers, front, replica)
        stalls = StallWatch() if args.stalls else None
        print(shape_line(shape))
        if stalls is not None and not stalls.available:
            print(f"stall column empty: {stalls.note}")
        if args.soak:
            mixed = next(s for s in scenarios(ctx) if s.name == "mixed")
            results.append(
                soak.soak(
                    lambda seconds: run_wrk(url, mixed.lua, 64, seconds), [p.pid for p, _ in servers], args.minutes
                )
            )
            finished = True
            return results
        for run in range(1, args.passes + 1):
            core_loop_ms = cpu.core_loop_ms()
            speed = cpu.core_loop_note(core_loop_ms)
            print(f"pass {run} of {args.passes}; {speed}" if args.passes > 1 else speed)
            print(TABLE_HEADER)
            for scenario in scenarios(ctx):
                if not scenario_selected(scenario.name, args.scenario):
                    continue
                for level in scenario.levels or levels:
                    measured = measure(url, ctx, scenario, level, args, cpu_groups, stalls)
                    results.append({**measured, "pass": run, "core_loop_ms": core_loop_ms})
                    print(row_line(results[-1]), flush=True)
        if args.passes > 1:
            print("\n".join(passes.summary(results)))
        results = [{**shape, **row} for row in results]
        if args.plans:
            save_plans(cluster, database_url, ctx, workdir, shape["data_size"])
        if args.backlog and scenario_selected("job_backlog", args.scenario):
            # Last: it adds 100,000 purchases. The instances restart with the job on, as production runs.
            if front is not None:
                front.stop()
            tear_down_servers(servers)

            def with_job(url: str, log: Path) -> dict[str, str]:
                return {**server_env(url, log), **backlog.JOB_ENV}

            instances_url = instance_database_url(cluster, "bench", args.database_over)
            # The job first goes through what the scenarios ingested while it was off: all of it is due.
            servers = start_servers(instances_url, args.instances, workdir, env=with_job)
            try:
                first, left, catch_up_s = backlog.catch_up(database_url)
            finally:
                tear_down_servers(servers)
            caught = f"{first - left:,} purchases the scenarios left due, in {catch_up_s:.1f} s"
            caught += f" ({left:,} still due)" if left else ""
            print(f"job backlog: first the job went through {caught}", flush=True)
            prefix, insert_s = backlog.insert(database_url, ctx.tokens["heavy_id"], SHOPLY)
            due = backlog.due(database_url)
            job_started = time.monotonic()
            servers = start_servers(
                instances_url,
                args.instances,
                workdir,
                env=with_job,
                socket_for=instance_sockets(workdir, instance_transport(args)),
            )
            url, front = start_front(servers, args, workdir, nginx_binary)
            mixed = next(s for s in scenarios(ctx) if s.name == "mixed")
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
                script.write(mixed.lua + "\n" + REPORT_LUA)
            try:
                argv = wrk_argv(url, script.name, 64, backlog.LIMIT_SECONDS + 60)
                row = backlog.clear(database_url, argv, ctx.tokens["heavy_id"], prefix, job_started)
            finally:
                os.unlink(script.name)
            row.update(backlog=backlog.BACKLOG, insert_s=insert_s, due=due)
            print(backlog.line(row), flush=True)
            results.append({**shape, **row, "scenario": "job_backlog", "concurrency": 64})
        finished = True
    finally:
        if stalls is not None:
            stalls.close()
        if replica is not None:
            replica.destroy()
        tear_down(front, servers, cluster, workdir, finished)
    return results


def tear_down_servers(servers: list[tuple[subprocess.Popen, int]]) -> None:
    """Stop the instances, all at once, then wait for each."""
    for process, _ in servers:
        if process.poll() is None:
            process.terminate()
    for process, _ in servers:
        stop_process(process)


def save_plans(cluster: LocalPostgres, database_url: str, ctx: Context, workdir: Path, size: str) -> None:
    """--plans: the list endpoints' query plans, from one extra instance (bench/plans.py)."""
    log_dir = workdir / "plans"
    log_dir.mkdir(exist_ok=True)

    def start_instance() -> tuple[subprocess.Popen, str]:
        ((process, port),) = start_servers(database_url, 1, log_dir)
        return process, f"http://127.0.0.1:{port}"

    requests = [(name, path, ctx.tokens[token]) for name, path, token in scale_scenarios.specs()] + [
        ("user_wallet_transactions", "/api/v1/users/me/wallet/transactions?limit=10", ctx.tokens["heavy"])
    ]
    text = plans.capture(lambda sql: cluster.psql(sql), cluster.log_file, start_instance, stop_process, requests)
    out = PROJECT_ROOT / "bench" / "results" / f"plans-{size}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"plans: {out}", flush=True)


def instance_sockets(workdir: Path, transport: str) -> Callable[[int], str] | None:
    """Where each instance listens when `transport` is "unix": production's path for the slot
    (deploy.inventory.Host.instance_socket) under the bench's front root, which NginxFront renders."""
    if transport != "unix":
        return None
    (workdir / "front" / "run").mkdir(parents=True, exist_ok=True)
    return lambda port: bench_host(str(workdir / "front"), 0, (port,)).instance_socket(port)


def start_front(
    servers: list[tuple[subprocess.Popen, int]], args: argparse.Namespace, workdir: Path, nginx_binary: str
) -> tuple[str, NginxFront | None]:
    """The URL wrk drives: nginx over the instances (production's shape), or one instance with --direct."""
    if args.direct:
        return f"http://127.0.0.1:{servers[0][1]}", None
    front = NginxFront(
        workdir / "front",
        free_port(),
        tuple(port for _, port in servers),
        instance_listen=instance_transport(args),
        upstream_keepalive=args.upstream_keepalive,
        binary=nginx_binary,
        credentials_limit=False,  # wrk's one address stands for many clients (bench.front)
    )
    front.start()
    return front.url, front


def tear_down(
    front: NginxFront | None,
    servers: list[tuple[subprocess.Popen, int]],
    cluster: LocalPostgres,
    workdir: Path,
    finished: bool,
) -> None:
    """Stop nginx, the instances and the database; keep the logs of a run that failed."""
    if front is not None:
        front.stop()
    tear_down_servers(servers)
    cluster.destroy()
    if finished:
        shutil.rmtree(workdir, ignore_errors=True)
    else:  # the instances' and nginx's logs say why; the database is gone either way
        print(f"bench failed or was stopped; logs kept in {workdir}", file=sys.stderr)


CPU_PARTS = ("service", "app", "nginx", "postgres")


def cpu_figures(before: cpu.Snapshot | None, after: cpu.Snapshot | None, requests: int) -> dict:
    """others_cpu: share of all CPUs used outside the bench; service_cpu_ms: CPU ms per request of the
    instances, nginx and PostgreSQL together (wrk excluded), then of each part. None without /proc."""
    if before is None or after is None:
        return {"others_cpu": None, **{f"{part}_cpu_ms": None for part in CPU_PARTS}}
    ticks = cpu.ticks_per_second()
    per_request = {
        f"{part}_cpu_ms": round(cpu.cpu_seconds(before, after, part, ticks) * 1000 / requests, 3) if requests else None
        for part in (*CPU_PARTS, "standby")
        if part in before.groups
    }
    return {"others_cpu": round(cpu.others_share(before, after, "bench"), 3), **per_request}


def bench_cpu_groups(
    cluster: LocalPostgres,
    servers: list[tuple[subprocess.Popen, int]],
    front: NginxFront | None,
    replica: LocalPostgres | None = None,
) -> dict[str, set[int]]:
    """The process trees cpu.snapshot sums, by group.

    "bench" is everything we started (this process and so wrk, the instances and nginx, plus the
    detached PostgreSQL clusters); "service" is what production would run on the app's host; then
    each part of it; "standby" (with --standby) the standby's cluster, another host in production."""
    postmaster = cluster_postmaster_pid(cluster)
    nginx = {front.process.pid} if front is not None and front.process is not None else set()
    app = {process.pid for process, _ in servers}
    groups = {
        "bench": {os.getpid(), postmaster},
        "service": app | nginx | {postmaster},
        "app": app,
        "nginx": nginx,
        "postgres": {postmaster},
    }
    if replica is not None:
        groups["standby"] = {cluster_postmaster_pid(replica)}
        groups["bench"] |= groups["standby"]
    return groups


def cluster_postmaster_pid(cluster: LocalPostgres) -> int:
    """pg_ctl detaches the postmaster from us; its pid file's first line names it."""
    return int((cluster.data_dir / "postmaster.pid").read_text().split()[0])


def wait_until_quiet(
    cpu_groups: dict[str, set[int]], busy_share: float = 0.05, window: float = 0.25, limit: float = 30.0
) -> float:
    """Wait until the instances use less than `busy_share` of one CPU over `window` seconds (at most
    `limit` seconds); returns the seconds waited."""
    ticks = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu.snapshot(cpu_groups)
        time.sleep(window)  # the sampling window of the measurement, not a wait for an event
        after = cpu.snapshot(cpu_groups)
        if before is None or after is None or cpu.cpu_seconds(before, after, "app", ticks) < busy_share * window:
            break
    return time.monotonic() - started


def measure(
    url: str,
    ctx: Context,
    scenario: Scenario,
    level: int,
    args: argparse.Namespace,
    cpu_groups: dict[str, set[int]],
    stalls: StallWatch | None = None,
) -> dict:
    """Warm up (figures discarded), then measure one scenario at one concurrency level."""
    # What the scenarios before this one wrote (chiefly ~300 bytes of log per request, twice) is
    # still in the page cache; the kernel writes it back later, in some later scenario's
    # measurement, and that writeback can pause the whole machine (the stall column). Flushed
    # here, each row measures its own scenario, as when it runs alone (docs/benchmarks.md).
    os.sync()
    warmup = args.warmup
    flood = flood_script = None
    if scenario.name in BACKGROUND_LOAD:
        # The flood runs through warm-up and measurement; the warm-up (at least 1 s here) is also the
        # flood's ramp to steady state, so the measurement never starts on an idle server.
        warmup = max(warmup, 1)
        background, background_level = BACKGROUND_LOAD[scenario.name]
        load = next(s for s in scenarios(ctx) if s.name == background)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as flood_file:
            flood_file.write(load.lua)
        flood_script = flood_file.name
        flood = subprocess.Popen(
            wrk_argv(url, flood_script, background_level, warmup + args.duration + 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        if warmup:
            run_wrk(url, scenario.lua, level, warmup)
        if stalls is not None:
            stalls.reset()
        before = cpu.snapshot(cpu_groups)
        figures = run_wrk(url, scenario.lua, level, args.duration)
        after = cpu.snapshot(cpu_groups)
        pauses = stalls.report() if stalls is not None else None
    finally:
        if flood is not None:
            stop_process(flood, timeout=10)
            os.unlink(flood_script)
            # Logins the flood left queued keep hashing after wrk stops; the next scenario must
            # not measure them (they would inflate its p99).
            wait_until_quiet(cpu_groups)
    target = target_verdict(scenario.name, level, figures)
    figures.update(cpu_figures(before, after, figures["requests"]))
    figures.update(pauses or {"max_stall_ms": None, "stalls": None})
    return {
        **figures,
        "scenario": scenario.name,
        "concurrency": level,
        "issue": scenario.issue,
        "target": target,
        "target_met": None if not target else target.endswith(": met"),
    }


if __name__ == "__main__":
    sys.exit(main())

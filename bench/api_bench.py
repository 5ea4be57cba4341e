"""API benchmark: the server as production runs it, against a real PostgreSQL with the demo seed.

    python -m bench.api_bench [--scenario NAME] [--duration 5] [--concurrency 16,64] [--instances 1]

Starts a throwaway PostgreSQL cluster, migrates it, loads the demo seed, starts `python -m server`
instance(s) on loopback, and drives each scenario with wrk (C, so the load generator takes as
little of the 2 cores as possible), printing requests/s, p50, p99 and errors per scenario and
concurrency. Every run is bounded: `duration` seconds per scenario and level.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from deploy.local_postgres import LocalPostgres, free_port  # noqa: E402

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
    logins = ", ".join(json.dumps(json.dumps({"email": f"bench{i}@example.test", "password": SEED_PASSWORD}))
                       for i in range(BENCH_USERS))
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
    ingest_lua = f"""
local tokens = {{{ingest_tokens}}}
local ids = {{{ingest_ids}}}
local n = 0
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
setup = function(thread) thread:set("tid", tostring(math.random(1, 1e9))) end
request = function()
  n = n + 1
  local i = (n % #tokens) + 1
  local body = '{{"external_id": "bench-' .. prefix .. '-' .. (tid or '0') .. '-' .. n .. '", "user_id": "' .. ids[i] ..
    '", "merchant_id": "{SHOPLY}", "amount": "10.00", "currency": "EUR"}}'
  return wrk.format("POST", "/api/v1/purchases", {{["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[i]}}, body)
end
"""
    mixed_lua = f"""
local tokens = {{{ingest_tokens}}}
local ids = {{{ingest_ids}}}
local n = 0
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
request = function()
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
    ]


def run_wrk(url: str, lua: str, concurrency: int, duration: float, threads: int = 1) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + "\n" + REPORT_LUA)
    try:
        result = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(duration))}s", "--timeout", "10s",
             "-s", script.name, url],
            capture_output=True, text=True, timeout=duration + 60,
        )
    finally:
        os.unlink(script.name)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH "):
            figures = json.loads(line[len("BENCH "):])
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
                    "SET hashed_password = EXCLUDED.hashed_password RETURNING id", f"bench{i}@example.test", hashed)
                await conn.execute("INSERT INTO wallets (user_id) VALUES ($1) ON CONFLICT DO NOTHING", row["id"])
                ids.append(str(row["id"]))
            # Let every bench user ingest without ever reaching the monthly cap.
            await conn.execute("UPDATE offers SET monthly_cap_per_user = 99999999 WHERE merchant_id = $1", SHOPLY)
            return ids
        finally:
            await conn.close()

    ids = asyncio.run(create_users())
    ctx = Context(base_url)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        def login(email: str) -> str:
            response = http.post("/api/v1/auth/login", json={"email": email, "password": SEED_PASSWORD})
            response.raise_for_status()
            return response.json()["access_token"]

        ctx.tokens["user"] = login("alice@clicknback.com")
        ctx.tokens["admin"] = login("carol@clicknback.com")
        ctx.tokens["bench_users"] = [login(f"bench{i}@example.test") for i in range(BENCH_USERS)]
        ctx.tokens["bench_user_ids"] = ids
    return ctx


def start_servers(database_url: str, instances: int, log_dir: Path) -> list[tuple[subprocess.Popen, str]]:
    env = {**os.environ, "DATABASE_URL": database_url, "OAUTH_HASH_KEY": "bench-signing-key-" + "x" * 32,
           "LOG_FORMAT": "json", "ENV_FILE": "/dev/null", "PURCHASE_JOB_ENABLED": "false",
           "LOGIN_MAX_FAILURES": "1000000"}
    servers = []
    for index in range(instances):
        port = free_port()
        log = (log_dir / f"server-{index}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)],
                                   cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        servers.append((process, f"http://127.0.0.1:{port}"))
    for process, url in servers:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"server exited early; see {log_dir}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server at {url} never became ready; see {log_dir}")
    return servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="", help="only scenarios whose name contains this")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario and level")
    parser.add_argument("--concurrency", default="16,64", help="comma-separated connection counts")
    parser.add_argument("--instances", type=int, default=1, help="server processes (only the first is measured "
                        "directly; more let you watch the database side)")
    parser.add_argument("--json", dest="json_out", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    levels = [int(part) for part in args.concurrency.split(",") if part.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="cnb-bench-"))
    os.chmod(workdir, 0o755)
    cluster = LocalPostgres(workdir / "pg")
    servers: list[tuple[subprocess.Popen, str]] = []
    results = []
    try:
        cluster.start()
        cluster.create_database("bench")
        database_url = cluster.dsn("bench")
        import asyncio

        from server import db_migrations
        from server.seed import load_demo_seed

        asyncio.run(db_migrations.upgrade(database_url))
        asyncio.run(load_demo_seed(database_url))
        servers = start_servers(database_url, args.instances, workdir)
        url = servers[0][1]
        ctx = prepare(url, database_url)
        print(f"server: {url} ({args.instances} instance(s)), {os.cpu_count()} CPUs, {args.duration}s per run")
        print(f"{'scenario':34} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for scenario in scenarios(ctx):
            if args.scenario and args.scenario not in scenario.name:
                continue
            for level in levels:
                flood = None
                if scenario.name == "health_live_during_login_flood":
                    login = next(s for s in scenarios(ctx) if s.name == "login")
                    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
                    script.write(login.lua)
                    script.close()
                    flood = subprocess.Popen(["wrk", "-t", "1", "-c", "32", "-d", f"{max(1, round(args.duration)) + 4}s",
                                              "-s", script.name, url], stdout=subprocess.DEVNULL)
                    time.sleep(1.0)  # let the flood reach steady state before measuring
                try:
                    figures = run_wrk(url, scenario.lua, level, args.duration)
                finally:
                    if flood is not None:
                        flood.terminate()
                        flood.wait()
                        os.unlink(script.name)
                figures.update({"scenario": scenario.name, "concurrency": level, "issue": scenario.issue})
                results.append(figures)
                print(f"{scenario.name:34} {level:>5} {figures['rps']:>9.0f} {figures['p50_us'] / 1000:>8.2f} "
                      f"{figures['p99_us'] / 1000:>8.2f} {figures['errors']:>7}", flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))
    finally:
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

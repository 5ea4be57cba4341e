"""bench/stack_ceiling.py's builders (schema and seed SQL, the app's argv and environment, scenarios,
options) and, once for real, bench/minimal_app.py against a throwaway PostgreSQL cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from bench import api_bench, minimal_app, stack_ceiling
from devtools.local_postgres import PRODUCTION_DURABILITY, LocalPostgres, find_pg_bindir, free_port


def test_schema_is_our_users_table_shape():
    sql = stack_ceiling.schema_sql()
    for column in (
        "id uuid PRIMARY KEY DEFAULT gen_random_uuid()",
        "email varchar(254) NOT NULL",
        "hashed_password text NOT NULL",
        "role varchar(16) NOT NULL DEFAULT 'user'",
        "active boolean NOT NULL DEFAULT true",
        "created_at timestamptz NOT NULL DEFAULT now()",
    ):
        assert column in sql
    assert "CREATE TABLE users (" in sql


def test_seed_inserts_the_asked_number_of_rows_then_analyzes():
    sql = stack_ceiling.seed_sql(3000)
    assert "generate_series(1, 3000)" in sql
    assert f"repeat('x', {stack_ceiling.PASSWORD_PLACEHOLDER_LENGTH})" in sql
    assert sql.rstrip().endswith("ANALYZE users;")
    with pytest.raises(ValueError):
        stack_ceiling.seed_sql(0)


def test_app_runs_as_its_own_module_on_loopback_with_the_database_in_its_environment():
    assert stack_ceiling.app_argv(8123) == [
        sys.executable,
        "-m",
        "bench.minimal_app",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
    ]
    assert stack_ceiling.app_env("postgres://postgres@127.0.0.1:5999/ceiling", Path("/tmp/x.log")) == {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5999/ceiling",
        "PYTHONUNBUFFERED": "1",
        "DB_POOL_MAX_SIZE": "20",
    }
    assert stack_ceiling.app_env("postgres://x", Path("/tmp/x.log"), pool_max=40)["DB_POOL_MAX_SIZE"] == "40"


def test_the_pool_is_production_s_unless_its_variables_say_otherwise():
    assert minimal_app.pool_sizes({}) == (2, 20)  # server/config.py's DB_POOL_MIN_SIZE / DB_POOL_MAX_SIZE
    assert minimal_app.pool_sizes({"DB_POOL_MAX_SIZE": "40"}) == (2, 40)
    for bad in ({"DB_POOL_MAX_SIZE": "1"}, {"DB_POOL_MAX_SIZE": "0", "DB_POOL_MIN_SIZE": "0"}):
        with pytest.raises(ValueError):
            minimal_app.pool_sizes(bad)


def test_scenarios_request_their_route_with_a_static_get():
    plain, row = stack_ceiling.scenarios(["plain", "row"])
    assert (plain.name, plain.path, row.name, row.path) == ("plain", "/plain", "row", "/row")
    assert plain.lua == 'wrk.method = "GET"\nwrk.path = "/plain"'
    assert row.lua == 'wrk.method = "GET"\nwrk.path = "/row"'
    with pytest.raises(ValueError):
        stack_ceiling.scenarios(["users_me"])


@pytest.mark.parametrize(
    ("scenario", "level", "figures", "verdict"),
    [
        ("row", 64, {"errors": 0, "p99_us": 20_000, "rps": 3500}, "users_me's >=3000 rps, p99<=30ms: met"),
        ("row", 64, {"errors": 0, "p99_us": 40_000, "rps": 3500}, "users_me's >=3000 rps, p99<=30ms: NOT met"),
        ("row", 16, {"errors": 0, "p99_us": 20_000, "rps": 3500}, ""),
        ("plain", 64, {"errors": 0, "p99_us": 20_000, "rps": 3500}, ""),  # health_live has no target
    ],
)
def test_the_target_column_judges_the_floor_against_its_service_scenario(scenario, level, figures, verdict):
    assert stack_ceiling.floor_verdict(scenario, level, figures) == verdict


def test_defaults_are_the_production_shape_at_the_targets_concurrency():
    args = stack_ceiling.parse_args([])
    assert (args.instances, args.direct, args.upstream_keepalive, args.warmup, args.duration) == (2, False, 0, 1, 5)
    assert (args.scenarios, args.levels, args.users) == (["plain", "row"], [64], stack_ceiling.DEFAULT_USERS)


def test_options_are_read_like_api_bench():
    args = stack_ceiling.parse_args(
        [
            "--instances",
            "1",
            "--direct",
            "--duration",
            "3.6",
            "--warmup",
            "0",
            "--concurrency",
            "16, 64",
            "--scenario",
            "row",
        ]
    )
    assert (args.instances, args.direct, args.duration, args.warmup, args.levels, args.scenarios) == (
        1,
        True,
        4,
        0,
        [16, 64],
        ["row"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--instances", "2", "--direct"],
        ["--instances", "0"],
        ["--instances", "1", "--direct", "--upstream-keepalive", "8"],
        ["--scenario", "users_me"],
        ["--concurrency", "0"],
        ["--concurrency", "x"],
        ["--users", "0"],
        ["--pool-max", "1"],
    ],
)
def test_contradictory_or_unknown_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        stack_ceiling.parse_args(argv)
    assert exit_info.value.code == 2


def test_the_header_is_api_bench_s_shape_line():
    args = stack_ceiling.parse_args(["--upstream-keepalive", "32", "--duration", "4"])
    line = api_bench.shape_line({**stack_ceiling.shape(args, (0.5, 1.0, 1.5)), "scheduler": "autogroup note"})
    assert line.startswith("shape: 2 instance(s) behind nginx (upstream keepalive 32, NOT as production);")
    assert "; autogroup note; load average at start 0.50 1.00 1.50; 4s per run, after a 1s warm-up" in line


def test_the_app_line_says_when_the_pool_is_not_production_s():
    production = stack_ceiling.shape(stack_ceiling.parse_args([]), (0, 0, 0))
    assert stack_ceiling.app_line(production) == (
        "app: minimal (bench/minimal_app.py), not the service; "
        "asyncpg pool 2..20 (as production); users table of 5000 rows"
    )
    bigger = stack_ceiling.shape(stack_ceiling.parse_args(["--pool-max", "40", "--users", "10"]), (0, 0, 0))
    assert "asyncpg pool 2..40 (NOT as production); users table of 10 rows" in stack_ceiling.app_line(bigger)


def _have_postgres() -> bool:
    try:
        find_pg_bindir()
        return True
    except RuntimeError:
        return False


@pytest.mark.e2e
@pytest.mark.skipif(not _have_postgres(), reason="PostgreSQL server binaries are not installed")
def test_minimal_app_answers_plain_and_row_from_a_real_cluster():
    base = Path(tempfile.mkdtemp(prefix="cnb-ceiling-test-"))
    os.chmod(base, 0o755)
    cluster = LocalPostgres(base / "pg")
    process = None
    try:
        cluster.start(PRODUCTION_DURABILITY)  # as both benches start theirs
        # The throwaway cluster's own shortcuts are overridden: commits reach the disk as in production.
        assert cluster.psql(
            "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit')"
        ) == ("fsync=on full_page_writes=on synchronous_commit=on")
        stack_ceiling.prepare_database(cluster, 50)
        # Through the socket folder, as the bench runs it by default.
        database_url = api_bench.instance_database_url(cluster, stack_ceiling.DATABASE, "socket")
        assert "?host=/" in database_url
        assert cluster.psql("SELECT count(*) FROM users", stack_ceiling.DATABASE) == "50"
        first_id = cluster.psql("SELECT id FROM users ORDER BY id LIMIT 1", stack_ceiling.DATABASE)
        port = free_port()
        output = base / "app.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                stack_ceiling.app_argv(port),
                cwd=stack_ceiling.PROJECT_ROOT,
                env={**os.environ, **stack_ceiling.app_env(database_url, base / "app.log")},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        ready = False
        while not ready and time.monotonic() < deadline:
            assert process.poll() is None, output.read_text()
            try:
                ready = httpx.get(url + "/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.05)  # poll interval; the loop waits on readiness itself
        assert ready, output.read_text()

        plain = httpx.get(url + "/plain", timeout=5)
        assert (plain.status_code, plain.json()) == (200, {"status": "alive"})
        assert plain.headers["content-type"] == "application/json; charset=utf-8"
        row = httpx.get(url + "/row", timeout=5)
        assert row.status_code == 200
        body = row.json()
        assert (body["id"], body["active"]) == (first_id, True)
        assert body["email"].startswith("ceiling") and body["role"] in ("user", "admin")
        assert set(body) == {"id", "email", "role", "active", "created_at"}
        assert f"minimal app ready on {port}: loop=uvloop.Loop, pool=2..20, user={first_id}" in output.read_text()
    finally:
        if process is not None:
            api_bench.stop_process(process)
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
    assert process.returncode is not None

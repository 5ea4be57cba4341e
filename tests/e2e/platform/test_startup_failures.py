"""A server whose database is not there at start-up: it waits for a PostgreSQL that is not up yet
(DB_STARTUP_WAIT_SECONDS), then gives up with one line on stderr, JSON-only stdout, no password."""

import asyncio
import json
import subprocess
import sys
import time

import pytest

from devtools.local_postgres import LocalPostgres, free_port
from server import db_migrations
from tests.conftest import TEST_KEY
from tests.support.server_process import PROJECT_ROOT, ServerProcess

pytestmark = pytest.mark.e2e
PASSWORD = "pw-never-shown-5c1e"


@pytest.mark.parametrize(
    "where, cause",
    [
        ("127.0.0.1:{port}/cnb", "cannot start: ConnectionRefusedError: [Errno 111] Connection refused"),
        (
            "/cnb?host=/nonexistent-socket-folder",
            "cannot start: FileNotFoundError: [Errno 2] No such file or directory",
        ),
    ],
)
def test_an_unreachable_database_stops_the_start_with_one_line(where, cause):
    url = f"postgres://app:{PASSWORD}@" + where.format(port=free_port())
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", str(free_port())],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "ENV_FILE": "/dev/null",
            "OAUTH_HASH_KEY": TEST_KEY,
            "DATABASE_URL": url,
            "LOG_FORMAT": "json",
            "PURCHASE_JOB_ENABLED": "false",
            "DB_STARTUP_WAIT_SECONDS": "1",
        },
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [cause]
    records = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON: no raw traceback
    assert any(record["level"] == "ERROR" and "exception" in record for record in records)
    assert [record["event"] for record in records].count("db.waiting") == 1  # the first failure is said once
    assert PASSWORD not in result.stdout + result.stderr and TEST_KEY not in result.stdout + result.stderr


def test_an_instance_started_before_postgresql_waits_and_then_serves(tmp_path):
    """After a reboot supervisor may start the instances before PostgreSQL accepts connections.
    The instance waits instead of exiting within supervisor's startsecs (which ended FATAL)."""
    cluster = LocalPostgres(tmp_path / "pg")
    cluster.ensure_initialised()  # its port is known; not started yet
    server = ServerProcess(cluster.dsn("postgres"), TEST_KEY, env={"DB_STARTUP_WAIT_SECONDS": "120"}).start(
        wait_ready=False
    )
    try:
        deadline = time.monotonic() + 30
        while not any(record.get("event") == "db.waiting" for record in server.log_records()):
            assert server.process.poll() is None, server.log_tail()
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)  # poll interval for the log line; the condition is what the test waits on
        cluster.start()
        asyncio.run(db_migrations.upgrade(cluster.dsn("postgres")))
        ready = server.wait_for("/health/ready", 200, timeout=60)
        assert ready.json()["checks"]["database"] == "ok"
        assert server.process.poll() is None  # the same process: it never exited
        waiting = [record for record in server.log_records() if record.get("event") == "db.waiting"]
        assert waiting[0]["level"] == "WARNING" and waiting[0]["error"] in {"ConnectionRefusedError", "OSError"}
    finally:
        server.stop()
        cluster.destroy()


def test_an_unknown_database_is_not_waited_for(databases):
    """Only a PostgreSQL that is not up yet is worth waiting for; a wrong database name never heals."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", str(free_port())],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "ENV_FILE": "/dev/null",
            "OAUTH_HASH_KEY": TEST_KEY,
            "DATABASE_URL": databases.url("no_such_database"),
            "LOG_FORMAT": "json",
            "PURCHASE_JOB_ENABLED": "false",
            "DB_STARTUP_WAIT_SECONDS": "600",
        },
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        'cannot start: InvalidCatalogNameError: database "no_such_database" does not exist'
    ]
    assert time.monotonic() - started < 30
    assert "db.waiting" not in result.stdout

"""A server that cannot reach its database at start-up: one line on stderr, JSON-only stdout, no password."""

import json
import subprocess
import sys

import pytest

from deploy.local_postgres import free_port
from tests.conftest import TEST_KEY
from tests.support.server_process import PROJECT_ROOT

pytestmark = pytest.mark.e2e
PASSWORD = "pw-never-shown-5c1e"


@pytest.mark.parametrize("where, cause", [
    ("127.0.0.1:{port}/cnb", "cannot start: ConnectionRefusedError: [Errno 111] Connection refused"),
    ("/cnb?host=/nonexistent-socket-folder", "cannot start: FileNotFoundError: [Errno 2] No such file or directory"),
])
def test_an_unreachable_database_stops_the_start_with_one_line(where, cause):
    url = f"postgres://app:{PASSWORD}@" + where.format(port=free_port())
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", str(free_port())], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "ENV_FILE": "/dev/null", "OAUTH_HASH_KEY": TEST_KEY, "DATABASE_URL": url,
             "LOG_FORMAT": "json", "PURCHASE_JOB_ENABLED": "false"},
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [cause]
    records = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON: no raw traceback
    assert any(record["level"] == "ERROR" and "exception" in record for record in records)
    assert PASSWORD not in result.stdout + result.stderr and TEST_KEY not in result.stdout + result.stderr

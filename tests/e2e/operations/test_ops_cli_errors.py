"""The ops CLI as a real process when the database is not there or the arguments are wrong.

The operator (and cron.log) gets one line naming the command and the cause, exit status 1 (2 for
bad arguments), never a traceback and never DATABASE_URL's password.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.local_postgres import free_port

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).resolve().parents[3]
PASSWORD = "pw-4f9e1c"


@pytest.fixture
def env_file(tmp_path) -> Path:
    """shared/.env whose DATABASE_URL points at a loopback port where nothing listens."""
    (tmp_path / "shared" / "logs").mkdir(parents=True)
    env_file = tmp_path / "shared" / ".env"
    env_file.write_text(f"DATABASE_URL=postgres://clicknback:{PASSWORD}@127.0.0.1:{free_port()}/clicknback\n")
    return env_file


def ops(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    # No pip-audit on PATH: the audit step must not reach for the network in a test.
    env = {**os.environ, "ENV_FILE": str(env_file), "PATH": "/usr/bin:/bin"}
    env.pop("CLICKNBACK_OPS_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["migrate", "--status"],
        ["migrate"],
        ["migrate", "--to", "1"],
        ["row-counts"],
        ["check-wallets"],
        ["rebuild-cap-totals", "--dry-run"],
    ],
)
def test_the_database_down_is_one_line_without_a_traceback_or_the_password(env_file, args):
    result = ops(env_file, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    assert args[0] in lines[0] and "Connect call failed" in lines[0], output
    assert "Traceback" not in output and PASSWORD not in output


@pytest.mark.parametrize(
    "args,named",
    [
        (["stats", "--only-logs", "--end", "notadate"], "--end"),
        (["stats", "--only-logs", "--window-hours", "-1"], "--window-hours"),
        (["stats", "--only-logs", "--window-hours", "0"], "--window-hours"),
    ],
)
def test_bad_stats_arguments_are_usage_errors(env_file, args, named):
    result = ops(env_file, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert f"argument {named}:" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_stats_window_ends_at_end_and_starts_before_it(env_file):
    import json

    result = ops(env_file, "stats", "--only-logs", "--end", "2026-11-27T12:00:00Z", "--window-hours", "1.5")
    assert result.returncode == 0, result.stderr
    logs = json.loads(result.stdout)["logs"]
    assert (logs["start"], logs["end"]) == ("2026-11-27T10:30:00+00:00", "2026-11-27T12:00:00+00:00")


def test_a_host_without_the_shared_steps_audits_its_release_with_the_database_down(env_file):
    # What cron runs on every host but the first: no database connection, so the audit still runs.
    result = ops(env_file, "maintenance", "--no-shared-steps", "--skip", "archive-logs", "--budget", "5")
    assert "Traceback" not in result.stdout + result.stderr and PASSWORD not in result.stdout + result.stderr
    report = result.stdout.split("maintenance report", 1)[1]
    assert "dependency-audit" in report and "advisory file" in report
    assert all(
        f"{step} " in report and "runs on another host" in report
        for step in ("vacuum-analyze", "reindex", "verify-backup", "check-wallets")
    )

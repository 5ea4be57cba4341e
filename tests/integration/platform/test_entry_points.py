"""Every entry point (the server, the ops CLI) refuses a bad configuration in one line, as a real process."""

import subprocess
import sys
from pathlib import Path

import pytest

from server.config import DATABASE_URL_FORMS
from tests.unit.test_config import UNENCODED_PASSWORD_URL

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def test_process_refuses_to_start_with_one_line_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", "1"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "ENV_FILE": "/dev/null", "OAUTH_HASH_KEY": "k" * 32},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL: is required (postgres://user@host:port/database)"
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["server", "--port", "1"],
        ["deploy.ops.cli", "migrate", "--status"],
        ["deploy.ops.cli", "check-wallets"],
        ["deploy.ops.cli", "backup"],
    ],
)
def test_every_entry_point_refuses_such_a_url_in_one_line_without_the_password(argv):
    result = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "ENV_FILE": "/dev/null",
            "OAUTH_HASH_KEY": "k" * 32,
            "DATABASE_URL": UNENCODED_PASSWORD_URL,
            "S3_BUCKET": "b",
            "S3_ACCESS_KEY_ID": "id",
            "S3_SECRET_ACCESS_KEY": "topsecret",
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert result.stderr.strip().splitlines() == [f"configuration error: DATABASE_URL: expected {DATABASE_URL_FORMS}"]
    assert "Ab3x" not in output and "Traceback" not in output

"""E2E fixtures for the operations tasks, on top of the deploy toolkit's sandbox fixtures.

The sandbox (two sshd hosts, PostgreSQL), the throwaway tagged repo and the deploy task runner are
issue 5's (tests/e2e/deploy/conftest.py), imported here. Added: an S3 endpoint (moto over HTTP)
whose settings go into the hosts' shared/.env, a provisioned and deployed release `vA`, and a runner
for `python -m deploy.tasks.operations`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from devtools.local_s3 import LocalS3
from tests.e2e.deploy.conftest import TaskResult, hosts, remotes, repo, run_task, sandbox  # noqa: F401 (fixtures)

BUCKET = "cnb-ops-e2e"
pytestmark = pytest.mark.e2e


@dataclass
class Bucket:
    name: str
    client: object


def _env_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


@pytest.fixture(scope="session")
def s3_settings(sandbox, tmp_path_factory):  # noqa: F811
    """The S3_* settings of the hosts: the sandbox's own endpoint when it has one, else a moto we start."""
    values = _env_values(sandbox.env_file.read_text())
    if values.get("S3_ENDPOINT_URL"):
        yield {k: v for k, v in values.items() if k.startswith("S3_")}
        return
    server = LocalS3(log_file=tmp_path_factory.mktemp("moto") / "moto.log").start()
    server.create_bucket(BUCKET)
    settings = server.settings(BUCKET)
    sandbox.env_file.write_text(sandbox.env_file.read_text() + "".join(f"{k}={v}\n" for k, v in settings.items()))
    yield settings
    server.stop()


@pytest.fixture(scope="session")
def bucket(s3_settings) -> Bucket:
    return Bucket(
        s3_settings["S3_BUCKET"],
        boto3.client(
            "s3",
            endpoint_url=s3_settings["S3_ENDPOINT_URL"],
            region_name=s3_settings.get("S3_REGION") or "us-east-1",
            aws_access_key_id=s3_settings["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=s3_settings["S3_SECRET_ACCESS_KEY"],
        ),
    )


@pytest.fixture(scope="session")
def deployed(sandbox, s3_settings, run_task):  # noqa: F811
    """Both hosts provisioned with the S3 settings in shared/.env and serving release vA."""
    run_task("provision", "--env-file", str(sandbox.env_file))
    result = run_task("deploy", "--tag", "vA")
    assert "deployed vA" in result.output, result.output
    return sandbox


@pytest.fixture(scope="session")
def ops_task(repo, deployed):  # noqa: F811
    """Run one task through tasks.py (`invoke ...`) in a subprocess from the throwaway repo, as an operator would."""

    def run(*args: str, check: bool = True, timeout: float = 300) -> TaskResult:
        env = {**os.environ, "CLICKNBACK_INVENTORY": str(deployed.inventory_path), "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        if check and result.returncode != 0:
            raise AssertionError(f"task {' '.join(args)} failed ({result.returncode}):\n{output}")
        return TaskResult(result.returncode, output, time.monotonic() - started)

    return run


@pytest.fixture(scope="session")
def backup_task(repo, deployed):  # noqa: F811
    def run(*args: str) -> TaskResult:
        env = {**os.environ, "CLICKNBACK_INVENTORY": str(deployed.inventory_path)}
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args], cwd=repo.path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return TaskResult(result.returncode, result.stdout + result.stderr, 0.0)

    return run


def logs_dir(sandbox, host) -> Path:  # noqa: F811
    return Path(sandbox.deploy_root(host.address)) / "shared" / "logs"

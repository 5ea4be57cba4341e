"""The sandbox with a PostgreSQL cluster on each sshd host (`sandbox up --database-pair`,
devtools/database_pair.py), for `invoke standby`, `invoke failover` and `invoke drill --failover`:
host-2 (127.0.0.2) the primary with the app's database, host-3 (127.0.0.3) no cluster yet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.database_pair import DatabasePair
from devtools.sandbox import Sandbox
from tests.support.sshd import started_sandbox

ROOT = Path(__file__).resolve().parents[3]
HOSTS = {"host-2": "127.0.0.2", "host-3": "127.0.0.3"}
pytestmark = pytest.mark.e2e


@dataclass
class Clusters:
    sandbox: Sandbox
    pair: DatabasePair

    @property
    def root(self) -> Path:
        return self.pair.root

    @property
    def port(self) -> int:
        return self.pair.port

    @property
    def bindir(self) -> Path:
        return self.pair.bindir

    def data_dir(self, host: str) -> Path:
        return self.pair.data_dir(host)

    def as_deploy_user(self, command: str) -> None:
        self.pair.as_owner(command)

    def start(self, host: str) -> None:
        self.pair.start(host)

    def psql(self, host: str, sql: str) -> str:
        return self.pair.psql(host, sql)

    def dsn(self, host: str) -> str:
        return f"postgres://postgres@{HOSTS[host]}:{self.port}/postgres"

    def postmaster_pid(self, host: str) -> int:
        return int((self.data_dir(host) / "postmaster.pid").read_text().splitlines()[0])

    def invoke(
        self, *args: str, check: bool = True, timeout: float = 300, cwd: Path = ROOT, inventory: Path | None = None
    ) -> tuple[int, str]:
        chosen = inventory or self.sandbox.inventory_path
        env = {**os.environ, "CLICKNBACK_INVENTORY": str(chosen), "PYTHONUNBUFFERED": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
        output = result.stdout + result.stderr
        if check and result.returncode != 0:
            raise AssertionError(f"invoke {' '.join(args)} failed ({result.returncode}):\n{output}")
        return result.returncode, output


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(0.1)


def pid_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def pair_sandbox() -> Iterator[Clusters]:
    with started_sandbox(tuple(HOSTS.values()), database_pair=True) as sandbox:
        pair = sandbox.pair()
        assert pair.hosts == HOSTS
        yield Clusters(sandbox, pair)


@pytest.fixture
def clusters() -> Iterator[Clusters]:
    for box in pair_sandbox():
        box.psql("host-2", "CREATE TABLE purchases_acked (n int PRIMARY KEY)")
        yield box

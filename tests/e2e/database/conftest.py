"""Two PostgreSQL clusters behind the sandbox's sshd hosts, for `invoke standby` and `invoke failover`.

Each host (host-2 on 127.0.0.2, host-3 on 127.0.0.3) gets a cluster of its own, owned by the deploy
user (so the inventory's database.run_as is empty) on the same port at the host's own address, as
two VPSs would have. The inventory's database table names them through {host} and {address}.
Authentication: a password (scram) for the replication role, which only `invoke standby` sets;
trust for the rest (the test's own checks, and the app's role, whose DATABASE_URL has no password).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.local_postgres import find_pg_bindir
from devtools.local_sshd import chown_tree, ports_free_on_all
from devtools.sandbox import Sandbox
from tests.support.sshd import started_sandbox

ROOT = Path(__file__).resolve().parents[3]
HOSTS = {"host-2": "127.0.0.2", "host-3": "127.0.0.3"}
HBA = "local all all trust\nhost replication replicator 127.0.0.0/8 scram-sha-256\nhost all all 127.0.0.0/8 trust\n"
pytestmark = pytest.mark.e2e


@dataclass
class Clusters:
    sandbox: Sandbox
    root: Path
    port: int
    bindir: Path

    def data_dir(self, host: str) -> Path:
        return self.root / host / "data"

    def settings(self) -> dict[str, object]:
        base = f"{self.root}/{{host}}"
        options = f"-c listen_addresses={{address}} -c port={self.port} -c unix_socket_directories={base}/run"
        return {
            "bindir": str(self.bindir),
            "data_dir": f"{base}/data",
            "socket_dir": f"{base}/run",
            "port": self.port,
            "run_as": "",
            "start": f"{self.bindir}/pg_ctl start -D {base}/data -l {base}/postgres.log -w -t 60 -o '{options}'",
            "stop": f"{self.bindir}/pg_ctl stop -D {base}/data -m fast -w -t 60",
            "firewall": "none",
        }

    def as_deploy_user(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        as_user = ["runuser", "-u", self.sandbox.sshd.user, "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*as_user, "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
        )
        assert not check or result.returncode == 0, result.stderr
        return result

    def start(self, host: str) -> None:
        command = str(self.settings()["start"]).replace("{host}", host).replace("{address}", HOSTS[host])
        self.as_deploy_user(command)

    def stop(self, host: str) -> None:
        if (self.data_dir(host) / "postmaster.pid").exists():
            self.as_deploy_user(f"{self.bindir}/pg_ctl stop -D {self.data_dir(host)} -m immediate -w", check=False)

    def psql(self, host: str, sql: str) -> str:
        result = subprocess.run(
            [f"{self.bindir}/psql", "-h", HOSTS[host], "-p", str(self.port), "-U", "postgres", "-qAtX", "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(result.stderr.strip())
        return result.stdout.strip()

    def dsn(self, host: str) -> str:
        return f"postgres://postgres@{HOSTS[host]}:{self.port}/postgres"

    def postmaster_pid(self, host: str) -> int:
        return int((self.data_dir(host) / "postmaster.pid").read_text().splitlines()[0])

    def invoke(self, *args: str, check: bool = True, timeout: float = 300) -> tuple[int, str]:
        env = {**os.environ, "CLICKNBACK_INVENTORY": str(self.sandbox.inventory_path), "PYTHONUNBUFFERED": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
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


@contextmanager
def clusters_on(sandbox: Sandbox) -> Iterator[Clusters]:
    """host-2 a primary with a table, host-3 no cluster yet (a new VPS); both SIGKILLed afterwards."""
    root = sandbox.base_dir / "db"
    for host in HOSTS:
        (root / host / "run").mkdir(parents=True)
    chown_tree(root, sandbox.sshd.user)
    port = ports_free_on_all(tuple(HOSTS.values()), 1)[0]
    box = Clusters(sandbox, root, port, find_pg_bindir())
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in box.settings().items())
    sandbox.inventory_path.write_text(
        sandbox.inventory_path.read_text() + "\n[environments.sandbox.database]\n" + table
    )
    data = box.data_dir("host-2")
    try:
        box.as_deploy_user(f"{box.bindir}/initdb -D {data} -U postgres --auth=trust --no-sync >/dev/null")
        (data / "pg_hba.conf").write_text(HBA)
        box.start("host-2")
        box.psql("host-2", "CREATE TABLE purchases_acked (n int PRIMARY KEY)")
        yield box
    finally:
        for host in HOSTS:
            if (box.data_dir(host) / "postmaster.pid").exists():
                try:
                    os.kill(box.postmaster_pid(host), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass


@pytest.fixture
def clusters() -> Iterator[Clusters]:
    with started_sandbox(tuple(HOSTS.values())) as sandbox, clusters_on(sandbox) as box:
        yield box

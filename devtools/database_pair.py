"""A PostgreSQL cluster on each sandbox host, for `invoke standby`, `failover` and `drill --failover`.

`invoke sandbox up --database-pair`: each sshd "host" (127.0.0.2, 127.0.0.3) gets a cluster of its
own under <base>/db/<host name>, owned by the deploy user (so the inventory's database.run_as is
empty and the tasks act on it over SSH as on a VPS), on one port at the host's own address. The
first is the primary and holds the app's database; the second stays empty until
`invoke standby --host host-3` builds it. The inventory's database table names them through {host}
and {address}. The replication role authenticates with its password (scram), as on a VPS; the rest
is trusted on loopback, like the sandbox's single cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devtools.local_postgres import find_pg_bindir
from devtools.local_sshd import chown_tree, ports_free_on_all

HBA = "local all all trust\nhost replication replicator 127.0.0.0/8 scram-sha-256\nhost all all 127.0.0.0/8 trust\n"


@dataclass
class DatabasePair:
    root: Path  # <sandbox base>/db
    user: str  # the deploy user, who owns both clusters
    hosts: dict[str, str]  # host name -> address, the primary first

    def __post_init__(self) -> None:
        self.bindir = find_pg_bindir()

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @property
    def port(self) -> int:
        if not self.port_file.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self.port_file.write_text(str(ports_free_on_all(tuple(self.hosts.values()), 1)[0]))
        return int(self.port_file.read_text())

    @property
    def primary(self) -> str:
        return next(iter(self.hosts))

    def data_dir(self, host: str) -> Path:
        return self.root / host / "data"

    def settings(self) -> dict[str, object]:
        """The inventory's [environments.<name>.database] table."""
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
            # The crash drill's abrupt stop: no checkpoint, crash recovery on the next start.
            "kill": f"{self.bindir}/pg_ctl stop -D {base}/data -m immediate -w -t 60",
            "firewall": "none",
        }

    def inventory_table(self, environment: str) -> str:
        rows = "".join(f"{key} = {json.dumps(value)}\n" for key, value in self.settings().items())
        return f"\n[environments.{environment}.database]\n{rows}"

    def as_owner(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        as_user = ["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*as_user, "sh", "-c", command], capture_output=True, text=True, timeout=120, cwd="/")
        if check and result.returncode != 0:
            raise RuntimeError(f"{command}: {result.stderr.strip()}")
        return result

    def start(self, host: str) -> None:
        if self.running(host):
            return
        command = str(self.settings()["start"]).replace("{host}", host).replace("{address}", self.hosts[host])
        self.as_owner(command)

    def running(self, host: str) -> bool:
        pid_file = self.data_dir(host) / "postmaster.pid"
        return pid_file.exists() and Path(f"/proc/{pid_file.read_text().split()[0]}").exists()

    def ensure_primary(self, app_role: str, database: str) -> None:
        """The first host's cluster created once, with the app's role and database; every cluster
        that exists started."""
        for host in self.hosts:
            (self.root / host / "run").mkdir(parents=True, exist_ok=True)
        self.port  # noqa: B018 - chosen once, before the folders go to the deploy user
        chown_tree(self.root, self.user)
        data = self.data_dir(self.primary)
        if not (data / "PG_VERSION").exists():
            self.as_owner(f"{self.bindir}/initdb -D {data} -U postgres --auth=trust --no-sync >/dev/null")
            (data / "pg_hba.conf").write_text(HBA)
        for host in self.hosts:  # after a failover, the second holds the primary
            if (self.data_dir(host) / "PG_VERSION").exists():
                self.start(host)
        exists = self.psql(self.primary, f"SELECT 1 FROM pg_roles WHERE rolname = '{app_role}'")
        if not exists:
            self.psql(self.primary, f"CREATE ROLE {app_role} LOGIN CREATEDB")
            self.psql(self.primary, f"CREATE DATABASE {database} OWNER {app_role}")

    def psql(self, host: str, sql: str) -> str:
        argv = [f"{self.bindir}/psql", "-h", self.hosts[host], "-p", str(self.port), "-U", "postgres", "-qAtX"]
        result = subprocess.run([*argv, "-c", sql], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise AssertionError(result.stderr.strip())
        return result.stdout.strip()

    def url(self, app_role: str, database: str) -> str:
        return f"postgres://{app_role}@{self.hosts[self.primary]}:{self.port}/{database}"

    def stop(self) -> None:
        """Stop whichever clusters run (pg_ctl, fast); a cluster that does not stop is SIGKILLed."""
        for host in self.hosts:
            if not self.running(host):
                continue
            self.as_owner(f"{self.bindir}/pg_ctl stop -D {self.data_dir(host)} -m fast -w -t 30", check=False)
            if self.running(host):
                os.kill(int((self.data_dir(host) / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)

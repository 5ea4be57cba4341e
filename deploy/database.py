"""How an environment's PostgreSQL clusters are run: the inventory's `[environments.<name>.database]`.

Every host that may hold the database (the primary, its streaming standby, the old primary rebuilt
as a standby after a failover) runs its cluster the same way, so one table per environment says
where the binaries and the data live, how the SSH user acts as the cluster's account, and what
standby, failover, point-in-time recovery and the crash drill need of it (ADR 0046). The defaults
are Debian's PostgreSQL 15 as `provision --system` installs it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

FIREWALLS = ("ufw", "none")
# Where the crash drill runs `kill` and `start`: on the database host, or on the operator's machine
# when the hosts cannot control the cluster (a managed database's CLI, the sandbox's local cluster).
DRILL_RUNS_ON = ("host", "local")
PITR_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
MEMORY_SIZE = re.compile(r"^[1-9][0-9]{0,6}(MB|GB)$")
# Stand for the host's inventory name and address in the paths and commands, for several clusters
# on one machine (the loopback tests); a real host needs neither.
PLACEHOLDERS = ("{host}", "{address}")


@dataclass(frozen=True)
class DatabaseSettings:
    bindir: str = "/usr/lib/postgresql/15/bin"
    data_dir: str = "/var/lib/postgresql/15/main"
    socket_dir: str = "/var/run/postgresql"
    port: int = 5432
    # Prefixes a command so it runs as the cluster's account (empty: the SSH user owns the cluster).
    run_as: str = "sudo -n -u postgres"
    start: str = "sudo -n systemctl start postgresql@15-main"
    stop: str = "sudo -n systemctl stop postgresql@15-main"
    # The firewall `provision --system` enables; the standby's address is let through to the port.
    firewall: str = "ufw"
    replication_user: str = "replicator"
    # The role the cluster's account logs in as over the socket (peer authentication on Debian).
    superuser: str = "postgres"
    # `provision --system`'s shared_buffers ("2GB", "512MB"); empty: a quarter of the host's RAM
    # (deploy/commands/postgres_memory.py, ADR 0036).
    shared_buffers: str = ""
    # The OS account that owns the cluster: PITR's cron job, sudo rule and archive run as it.
    account: str = "postgres"
    # Point-in-time recovery's files: Debian's paths when empty, else all under this one folder;
    # pitr_name names its cron and sudoers files (several environments on one machine keep apart).
    pitr_dir: str = ""
    pitr_name: str = "clicknback-pitr"
    # The crash drill's abrupt stop, and where it runs it and `start` (DRILL_RUNS_ON).
    kill: str = "sudo -n systemctl kill --signal=SIGKILL postgresql@15-main"
    drill_runs_on: str = "host"

    def for_host(self, name: str, address: str) -> DatabaseSettings:
        def fill(value: str) -> str:
            return value.replace("{host}", name).replace("{address}", address)

        filled: dict[str, Any] = {
            f.name: fill(value) for f in fields(self) if isinstance(value := getattr(self, f.name), str)
        }
        return replace(self, **filled)

    @property
    def build_marker(self) -> str:
        """Present while a standby build has emptied the data folder and not yet started it."""
        return str(Path(self.data_dir).parent / "clicknback-standby-build")

    @property
    def passfile(self) -> str:
        """Beside the data folder, not in it: a rebuild empties the data folder."""
        return str(Path(self.data_dir).parent / "clicknback-replication.pgpass")


def parse_database(table: Any, where: str, path: Path) -> DatabaseSettings:
    from deploy.inventory import InventoryError

    if not isinstance(table, dict):
        raise InventoryError(f"{path}: {where}: expected a table")
    known = {f.name: f for f in fields(DatabaseSettings)}
    for key, value in table.items():
        if key not in known:
            raise InventoryError(f"{path}: {where}.{key}: unknown key (allowed: {', '.join(sorted(known))})")
        if key == "port":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise InventoryError(f"{path}: {where}.port: expected a port number 1-65535, got {value!r}")
        elif not isinstance(value, str):
            raise InventoryError(f"{path}: {where}.{key}: expected a string, got {value!r}")
    for key in ("bindir", "data_dir", "socket_dir"):
        value = table.get(key, "/x")
        if not value.startswith("/") or value.rstrip("/") == "":
            raise InventoryError(f"{path}: {where}.{key}: expected an absolute path other than /, got {value!r}")
    for key in ("replication_user", "superuser"):
        if not ROLE_NAME.match(table.get(key, "postgres")):
            raise InventoryError(f"{path}: {where}.{key}: expected a lower-case role name")
    for key in ("start", "stop", "kill", "account"):
        if key in table and not table[key].strip():
            expected = "the cluster's OS account" if key == "account" else "a command"
            raise InventoryError(f"{path}: {where}.{key}: expected {expected}")
    if not MEMORY_SIZE.match(table.get("shared_buffers", "1GB")):
        raise InventoryError(f'{path}: {where}.shared_buffers: expected a size in MB or GB, like "2GB"')
    if table.get("firewall", "ufw") not in FIREWALLS:
        raise InventoryError(f"{path}: {where}.firewall: expected one of {', '.join(FIREWALLS)}")
    if table.get("drill_runs_on", "host") not in DRILL_RUNS_ON:
        raise InventoryError(f"{path}: {where}.drill_runs_on: expected one of {', '.join(DRILL_RUNS_ON)}")
    if not PITR_NAME.match(table.get("pitr_name", "clicknback-pitr")):
        raise InventoryError(f"{path}: {where}.pitr_name: lowercase letters, digits and -, got {table['pitr_name']!r}")
    pitr_dir = table.get("pitr_dir", "")
    if pitr_dir and (not pitr_dir.startswith("/") or pitr_dir.rstrip("/") == ""):
        raise InventoryError(f"{path}: {where}.pitr_dir: expected an absolute path other than /, got {pitr_dir!r}")
    trimmed = ("bindir", "data_dir", "pitr_dir")
    return DatabaseSettings(**{k: (v.rstrip("/") if k in trimmed else v) for k, v in table.items()})


# An older inventory described the cluster a second time for PITR (`pitr = {...}`) and for the
# drill (drill_database_*): each key and where it lives now, in the database table.
MOVED_PITR_KEYS = {
    "os_user": "account",
    "pg_host": "socket_dir",
    "pg_port": "port",
    "name": "pitr_name",
    "dir": "pitr_dir",
    "data_dir": "data_dir",
    "pg_stop": "stop",
    "pg_start": "start",
}
MOVED_DRILL_KEYS = {
    "drill_database_stop": "kill",
    "drill_database_start": "start",
    "drill_database_runs_on": "drill_runs_on",
}
MOVED_DRILL_VALUES = {"first_host": "host"}


def moved_keys_error(table: dict, where: str, path: Path) -> str | None:
    """The message for an environment table that still has a `pitr` table or drill_database_* keys:
    the exact lines to write into its database table instead, or None when it has neither."""
    lines: list[str] = []
    old: list[str] = []
    pitr = table.get("pitr")
    if "pitr" in table:
        old.append("the pitr table")
        if not isinstance(pitr, dict):
            pitr = {}
        for key, value in pitr.items():
            target = MOVED_PITR_KEYS.get(key)
            lines.append(f"{target} = {_toml(value)}" if target else f"(pitr.{key}: no such key; drop it)")
    for key, target in MOVED_DRILL_KEYS.items():
        if key in table:
            old.append(key)
            value = table[key]
            lines.append(
                f"{target} = {_toml(MOVED_DRILL_VALUES.get(value, value) if isinstance(value, str) else value)}"
            )
    if not old:
        return None
    body = "; ".join(lines) if lines else "nothing (the pitr table is empty)"
    return (
        f"{path}: {where}: {' and '.join(old)} moved into [{where}.database] (ADR 0046): delete "
        f"{'them' if len(old) > 1 else 'it'} and write there: {body}"
    )


def _toml(value: Any) -> str:
    # A JSON string or number is a TOML one too.
    return json.dumps(value)

"""How an environment's PostgreSQL clusters are run: the inventory's `[environments.<name>.database]`.

Every host that may hold the database (the primary, its streaming standby, the old primary rebuilt
as a standby after a failover) runs its cluster the same way, so one table per environment says
where the binaries and the data live and how the SSH user acts as the cluster's account. The
defaults are Debian's PostgreSQL 15 as `provision --system` installs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

FIREWALLS = ("ufw", "none")
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
    for key in ("start", "stop"):
        if key in table and not table[key].strip():
            raise InventoryError(f"{path}: {where}.{key}: expected a command")
    if not MEMORY_SIZE.match(table.get("shared_buffers", "1GB")):
        raise InventoryError(f'{path}: {where}.shared_buffers: expected a size in MB or GB, like "2GB"')
    if table.get("firewall", "ufw") not in FIREWALLS:
        raise InventoryError(f"{path}: {where}.firewall: expected one of {', '.join(FIREWALLS)}")
    return DatabaseSettings(**{k: (v.rstrip("/") if k in ("bindir", "data_dir") else v) for k, v in table.items()})

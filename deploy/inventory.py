"""The inventory: which environments exist, their hosts, and how each host is laid out.

One TOML file (``deploy/inventory.toml`` by default, or ``--inventory`` / ``CLICKNBACK_INVENTORY``)
holds ``[defaults]``, then ``[environments.<name>]`` tables that may override any default, each
with ``[[environments.<name>.hosts]]`` entries that may override again. Unknown keys and wrong
types are errors that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from deploy.database import DatabaseSettings, moved_keys_error, parse_database
from server.listen import MAX_SOCKET_PATH

DEFAULT_INVENTORY = Path(__file__).resolve().parent / "inventory.toml"
INVENTORY_ENV_VAR = "CLICKNBACK_INVENTORY"

BACKUP_SCHEDULES = ("weekly", "daily", "hourly")
INSTANCE_LISTEN = ("unix", "tcp")

# Every key a host may carry, with its default. Environments and hosts may override each one.
HOST_DEFAULTS: dict[str, Any] = {
    "ssh_port": 22,
    "ssh_user": "clicknback",
    "identity_file": "",
    "known_hosts": "~/.ssh/known_hosts",
    "deploy_root": "/srv/clicknback",
    "bind_address": "127.0.0.1",
    # How nginx and the probes reach the instances: "unix" (a socket per slot,
    # <deploy_root>/run/app-<port>.sock; the port then only names the slot) or "tcp"
    # (bind_address:port). The socket skips the loopback TCP stack, so each proxied request costs
    # less CPU (docs/benchmarks.md).
    "instance_listen": "unix",
    "instance_ports": [8001, 8002],
    # The partner port of each instance: a release switch starts the new instances there while the
    # old ones serve, then flips nginx. Empty = each instance port + 100.
    "standby_ports": [],
    "nginx_port": 80,
    # {instance} is the instance's own URL: http+unix://<socket path, %-encoded> or
    # http://<bind_address>:<port>; {bind_address}, {port} and {address} are there too.
    "ready_url": "{instance}/health/ready",
    "live_url": "{instance}/health/live",
    "python": "python3",
    "keep_releases": 5,
    "health_timeout": 30,
    "health_interval": 1.0,
    "backup_schedule": "weekly",
}

# The S3 settings (endpoint, bucket, credentials) live only in each host's env file
# (<deploy_root>/shared/.env, uploaded by `invoke provision --env-file`), where the VPS-side ops
# CLI reads them; an inventory that still has an s3 table is refused rather than silently ignored.
S3_MOVED = (
    "the inventory no longer holds S3 settings: they live in each host's env file "
    "(S3_ENDPOINT_URL, S3_BUCKET, ... in <deploy_root>/shared/.env, uploaded by "
    "`invoke provision --env-file`); delete this table"
)

# Environment names the failover drill never runs on, whatever the inventory says.
PRODUCTION_NAMES = ("prod", "production", "live")

HOST_ONLY_KEYS = {"name", "address"}
ENVIRONMENT_ONLY_KEYS = {"hosts", "allow_drill", "database"}


class InventoryError(ValueError):
    """The inventory file is missing, unreadable or invalid; the message names the bad key."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    ssh_port: int
    ssh_user: str
    identity_file: str
    known_hosts: str
    deploy_root: str
    bind_address: str
    instance_listen: str
    instance_ports: tuple[int, ...]
    standby_ports: tuple[int, ...]
    nginx_port: int
    ready_url: str
    live_url: str
    python: str
    keep_releases: int
    health_timeout: int
    health_interval: float
    backup_schedule: str

    @property
    def all_ports(self) -> tuple[int, ...]:
        return self.instance_ports + self.standby_ports

    def partner_port(self, port: int) -> int:
        """The other port of the same instance slot (live <-> standby)."""
        if port in self.instance_ports:
            return self.standby_ports[self.instance_ports.index(port)]
        return self.instance_ports[self.standby_ports.index(port)]

    def instance_socket(self, port: int) -> str:
        """The Unix socket of the instance slot `port` (used when instance_listen is "unix")."""
        return f"{self.deploy_root}/run/app-{port}.sock"

    def instance_url(self, port: int) -> str:
        """How the host itself reaches the instance: http+unix://<%-encoded socket> or http://host:port."""
        if self.instance_listen == "unix":
            return "http+unix://" + quote(self.instance_socket(port), safe="")
        return f"http://{self.bind_address}:{port}"

    def instance_label(self, port: int) -> str:
        """The instance's address in messages: its socket path or bind_address:port."""
        return self.instance_socket(port) if self.instance_listen == "unix" else f"{self.bind_address}:{port}"

    def ready_url_for(self, port: int) -> str:
        return self._url(self.ready_url, port)

    def live_url_for(self, port: int) -> str:
        return self._url(self.live_url, port)

    def _url(self, template: str, port: int) -> str:
        return template.format(
            instance=self.instance_url(port), bind_address=self.bind_address, port=port, address=self.address
        )

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class Environment:
    name: str
    hosts: tuple[Host, ...]
    # The failover drill SIGKILLs the app and the database: only where the inventory says so.
    allow_drill: bool = False
    # How its PostgreSQL clusters run, for standby, failover, PITR and the drill: deploy/database.py.
    database: DatabaseSettings = DatabaseSettings()

    @property
    def looks_like_production(self) -> bool:
        """prod, production, live, or a name made of them (prod-eu, live_2, ...)."""
        words = [w for w in self.name.lower().replace("_", "-").replace(".", "-").split("-") if w]
        return any(word in PRODUCTION_NAMES for word in words)

    @property
    def on_loopback_only(self) -> bool:
        """Every host is this machine (the sandbox): nothing anyone else uses can be crashed."""
        return all(_is_loopback(host.address) for host in self.hosts)

    def drill_refusal(self) -> str | None:
        """Why the failover drill must not run here, or None when it may."""
        if self.looks_like_production:
            return (
                f"the drill crashes the app and the database: environment {self.name!r} is named like "
                f"production, and the drill never runs on production"
            )
        if not (self.allow_drill or self.on_loopback_only):
            return (
                f"the drill crashes the app and the database: environment {self.name!r} does not allow it "
                f"(set allow_drill = true in its [environments.{self.name}] table, for a staging "
                f"environment only; a sandbox whose hosts are all loopback addresses needs nothing)"
            )
        return None


@dataclass(frozen=True)
class Inventory:
    path: Path
    environments: dict[str, Environment] = field(default_factory=dict)
    default_environment: str = "production"

    def environment(self, name: str | None) -> Environment:
        chosen = name or self.default_environment
        if chosen not in self.environments:
            known = ", ".join(sorted(self.environments)) or "(none)"
            raise InventoryError(f"{self.path}: no environment named {chosen!r} (known: {known})")
        return self.environments[chosen]


def inventory_path(explicit: str | None = None) -> Path:
    """The file to load: an explicit path, else $CLICKNBACK_INVENTORY, else deploy/inventory.toml."""
    chosen = explicit or os.environ.get(INVENTORY_ENV_VAR) or str(DEFAULT_INVENTORY)
    return Path(chosen).expanduser()


def load_inventory(explicit: str | None = None) -> Inventory:
    path = inventory_path(explicit)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from None
    return parse_inventory(text, path)


def parse_inventory(text: str, path: Path | str = "<inventory>") -> Inventory:
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path}: not valid TOML: {exc}") from None
    _reject_unknown(data, {"default_environment", "defaults", "environments"}, "", path)
    defaults = data.get("defaults", {})
    _expect_table(defaults, "defaults", path)
    if "s3" in defaults:
        raise InventoryError(f"{path}: defaults.s3: {S3_MOVED}")
    _reject_unknown(defaults, set(HOST_DEFAULTS), "defaults", path)
    environments_data = data.get("environments", {})
    _expect_table(environments_data, "environments", path)
    if not environments_data:
        raise InventoryError(f"{path}: environments: at least one environment is required")
    environments = {
        name: _parse_environment(name, env_data, defaults, path) for name, env_data in environments_data.items()
    }
    known = ", ".join(sorted(environments))
    if "default_environment" not in data:
        # Absent: "production" if there is one, else the only environment; never a guess among several.
        if "production" not in environments and len(environments) > 1:
            raise InventoryError(
                f"{path}: default_environment: required when there is no environment "
                f"named 'production' and several others (known: {known})"
            )
        default_environment = "production" if "production" in environments else next(iter(environments))
    else:
        default_environment = data["default_environment"]
    if not isinstance(default_environment, str):
        raise InventoryError(f"{path}: default_environment: expected a string")
    if default_environment not in environments:
        # Never another environment instead: a typo must not send a command to production.
        raise InventoryError(
            f"{path}: default_environment: no environment named {default_environment!r} (known: {known})"
        )
    return Inventory(path=path, environments=environments, default_environment=default_environment)


def _parse_environment(name: str, env_data: Any, defaults: dict, path: Path) -> Environment:
    where = f"environments.{name}"
    _expect_table(env_data, where, path)
    if "s3" in env_data:
        raise InventoryError(f"{path}: {where}.s3: {S3_MOVED}")
    moved = moved_keys_error(env_data, where, path)
    if moved:
        raise InventoryError(moved)
    _reject_unknown(env_data, set(HOST_DEFAULTS) | ENVIRONMENT_ONLY_KEYS, where, path)
    allow_drill = env_data.get("allow_drill", False)
    if not isinstance(allow_drill, bool):
        raise InventoryError(f"{path}: {where}.allow_drill: expected true or false, got {allow_drill!r}")
    hosts_data = env_data.get("hosts")
    if not isinstance(hosts_data, list) or not hosts_data:
        raise InventoryError(f"{path}: {where}.hosts: expected at least one [[{where}.hosts]] entry")
    inherited = {**HOST_DEFAULTS, **_only(defaults, HOST_DEFAULTS), **_only(env_data, HOST_DEFAULTS)}
    hosts = tuple(
        _parse_host(host_data, inherited, f"{where}.hosts[{index}]", path) for index, host_data in enumerate(hosts_data)
    )
    names = [host.name for host in hosts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InventoryError(f"{path}: {where}.hosts: duplicate host name {duplicates[0]!r}")
    database = parse_database(env_data.get("database", {}), f"{where}.database", path)
    return Environment(name=name, hosts=hosts, allow_drill=allow_drill, database=database)


def _parse_host(host_data: Any, inherited: dict, where: str, path: Path) -> Host:
    _expect_table(host_data, where, path)
    _reject_unknown(host_data, set(HOST_DEFAULTS) | HOST_ONLY_KEYS, where, path)
    if not isinstance(host_data.get("address"), str) or not host_data["address"]:
        raise InventoryError(f"{path}: {where}.address: required (the SSH address of the host)")
    values = {**inherited, **_only(host_data, HOST_DEFAULTS)}
    values["address"] = host_data["address"]
    values["name"] = host_data.get("name", host_data["address"])
    for key, value in values.items():
        values[key] = _check_value(key, value, f"{where}.{key}", path)
    values["instance_ports"] = tuple(values["instance_ports"])
    standby = tuple(values["standby_ports"]) or tuple(port + 100 for port in values["instance_ports"])
    if len(standby) != len(values["instance_ports"]) or set(standby) & set(values["instance_ports"]):
        raise InventoryError(
            f"{path}: {where}.standby_ports: expected one port per instance port, "
            f"none of them an instance port, got {list(standby)}"
        )
    values["standby_ports"] = standby
    host = Host(**values)
    if host.instance_listen == "unix":
        longest = max((host.instance_socket(port) for port in host.all_ports), key=len)
        if len(longest.encode()) > MAX_SOCKET_PATH:
            raise InventoryError(
                f"{path}: {where}.deploy_root: too long for the instances' Unix sockets "
                f"({longest} is over {MAX_SOCKET_PATH} bytes); shorten it or set "
                f'instance_listen = "tcp"'
            )
    return host


def _check_value(key: str, value: Any, where: str, path: Path) -> Any:
    def fail(expected: str) -> InventoryError:
        return InventoryError(f"{path}: {where}: expected {expected}, got {value!r}")

    if key in ("ssh_port", "nginx_port"):
        if not _is_port(value):
            raise fail("a port number 1-65535")
    elif key in ("instance_ports", "standby_ports"):
        if (
            not isinstance(value, list)
            or (key == "instance_ports" and not value)
            or not all(_is_port(p) for p in value)
        ):
            raise fail("a non-empty list of port numbers" if key == "instance_ports" else "a list of port numbers")
        if len(set(value)) != len(value):
            raise fail("distinct port numbers")
    elif key in ("keep_releases", "health_timeout"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail("a positive integer")
    elif key == "health_interval":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise fail("a positive number of seconds")
        return float(value)
    elif key == "backup_schedule":
        if value not in BACKUP_SCHEDULES:
            raise fail("one of " + ", ".join(BACKUP_SCHEDULES))
    elif key == "deploy_root":
        if not isinstance(value, str) or not value.startswith("/") or value.rstrip("/") == "":
            raise fail("an absolute path other than /")
        return value.rstrip("/")
    elif key in ("ready_url", "live_url"):
        if not isinstance(value, str) or ("{port}" not in value and "{instance}" not in value):
            raise fail("a URL template containing {instance} or {port}")
    elif key == "instance_listen":
        if value not in INSTANCE_LISTEN:
            raise fail("one of " + ", ".join(INSTANCE_LISTEN))
    elif not isinstance(value, str):
        raise fail("a string")
    return value


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _only(table: dict, keys: dict) -> dict:
    return {key: value for key, value in table.items() if key in keys}


def _expect_table(value: Any, where: str, path: Path) -> None:
    if not isinstance(value, dict):
        raise InventoryError(f"{path}: {where}: expected a table")


def _reject_unknown(table: dict, allowed: set[str], where: str, path: Path) -> None:
    for key in table:
        if key not in allowed:
            dotted = f"{where}.{key}" if where else key
            raise InventoryError(f"{path}: {dotted}: unknown key (allowed: {', '.join(sorted(allowed))})")

"""A throwaway PostgreSQL cluster on loopback, for `invoke serve`, the sandbox, the tests and the benches.

One implementation serves all three. The cluster runs from a data folder of its own with trust
authentication on 127.0.0.1 only. initdb and postgres refuse to run as root, so when this
process is root every PostgreSQL binary runs as an unprivileged account instead.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

UNPRIVILEGED_USER = "nobody"
SUPERUSER = "postgres"
# The throwaway clusters skip flushing to disk (nothing in them must outlive a crash), which makes
# a commit cheaper than on a production server. A benchmark passes these to start() to write as
# production's PostgreSQL does, with the server's own defaults.
PRODUCTION_DURABILITY = "-c fsync=on -c full_page_writes=on -c synchronous_commit=on"


class LocalPostgresError(RuntimeError):
    """The cluster could not be created, started or reached."""


def find_pg_bindir() -> Path:
    """Locate the directory holding initdb/pg_ctl/postgres: PG_BINDIR, else the system's (newest
    major version wins), else the copy bundled in the dev requirements (pgserver), so that
    `make serve` runs on a machine with no PostgreSQL server installed."""
    override = os.environ.get("PG_BINDIR")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_of, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    bundled = bundled_pg_bindir()
    if bundled is not None:
        candidates.append(str(bundled))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise LocalPostgresError(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin, PATH and the "
        "dev requirements' pgserver). Install them with: apt-get install -y postgresql"
    )


def bundled_pg_bindir() -> Path | None:
    """The PostgreSQL binaries inside the pgserver package (requirements-dev.lock), if installed.
    Found without importing it: its import pulls in psutil and a lock-file library we do not use."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _major_of(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _demote_kwargs() -> dict:
    """subprocess kwargs that run a child as the unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def give_to_cluster_user(path: Path) -> None:
    """Hand `path` to the account the cluster runs as (only when this process is root)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class LocalPostgres:
    """A cluster under `base_dir` (data/ and run/ inside it) listening on host:port."""

    base_dir: Path
    port: int = 0
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        self.bindir = find_pg_bindir()
        if not self.port:
            self.port = self._remembered_port() or free_port(self.host)

    # -- paths -------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def _remembered_port(self) -> int:
        port_file = self.base_dir / "port"
        return int(port_file.read_text()) if port_file.exists() else 0

    # -- lifecycle ---------------------------------------------------------------------------
    def ensure_initialised(self) -> bool:
        """Create the cluster if it does not exist yet. Returns True when it was created."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.base_dir, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
            give_to_cluster_user(folder)
        if os.geteuid() == 0:
            # The unprivileged account must be able to reach base_dir through its parents.
            for parent in self.base_dir.parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            "initdb",
        )
        (self.base_dir / "port").write_text(str(self.port))
        return True

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        result = subprocess.run(
            [self._bin("pg_ctl"), "status", "-D", str(self.data_dir)],
            capture_output=True,
            **_demote_kwargs(),
        )
        return result.returncode == 0

    def start(self, extra_options: str = "") -> None:
        """Start the cluster (creating it first if needed) and wait until it accepts connections."""
        self.ensure_initialised()
        if self.is_running():
            return
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} "
            f"-c unix_socket_directories={self.run_dir} -c fsync=off -c full_page_writes=off "
            f"-c synchronous_commit=off -c max_connections=300 {extra_options}"
        )
        self._run(
            [
                self._bin("pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
            ],
            "pg_ctl start",
        )

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run([self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w"], "pg_ctl stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- SQL helpers -------------------------------------------------------------------------
    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgres://{user}@{self.host}:{self.port}/{database}"

    def socket_dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """The same database through the cluster's Unix-domain socket (server.config.database_address)."""
        return f"postgres://{user}@:{self.port}/{database}?host={self.run_dir}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                self._bin("psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise LocalPostgresError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def database_exists(self, name: str) -> bool:
        return self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"

    def create_database(self, name: str, template: str | None = None, owner: str | None = None) -> None:
        clause = f' TEMPLATE "{template}"' if template else ""
        clause += f' OWNER "{owner}"' if owner else ""
        self.psql(f'CREATE DATABASE "{name}"{clause}')

    def role_exists(self, name: str) -> bool:
        return self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'") == "1"

    def create_app_role(self, name: str) -> None:
        """A login role like production's after `provision --system` (createuser --no-superuser
        --createdb --no-createrole): it owns the app's database, creates restore targets, nothing more."""
        self.psql(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER CREATEDB NOCREATEROLE')

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run(self, argv: list[str], what: str) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/", **_demote_kwargs())
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise LocalPostgresError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}\n{log_tail}")


def wait_until_accepting(host: str, port: int, timeout: float = 30.0) -> None:
    """Poll a TCP port until it accepts a connection (used after restarts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise LocalPostgresError(f"nothing accepts connections on {host}:{port} after {timeout:.0f}s")

"""`invoke sandbox up|down`: a local VPS pair on this machine, and the machinery the e2e tests share.

Two sshd "hosts" on 127.0.0.2 and 127.0.0.3 (devtools/local_sshd.py), each with its own deploy root
in a local folder owned by the deploy user, a throwaway PostgreSQL (devtools/local_postgres.py) where
the app runs as a non-superuser role with CREATEDB (as after `provision --system`), an S3 endpoint
(devtools/local_s3.py), a generated shared/.env and an inventory file.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devtools.local_postgres import LocalPostgres
from devtools.local_sshd import (
    LocalSshd,
    chown_tree,
    ensure_deploy_user,
    is_under,
    make_reachable,
    ports_free_on_all,
    remove_crontab_entries,
)

DEFAULT_ADDRESSES = ("127.0.0.2", "127.0.0.3")
ENVIRONMENT = "sandbox"
DATABASE = "clicknback"
APP_ROLE = "clicknback"  # the app's role in DATABASE_URL: not a superuser, as in production
S3_BUCKET = "clicknback-sandbox"
REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass
class Sandbox:
    base_dir: Path
    addresses: tuple[str, ...] = DEFAULT_ADDRESSES
    nginx_port: int = 0  # 0: a port free on every address, chosen once and kept in the base dir
    instance_ports: tuple[int, ...] = (8001, 8002)
    standby_ports: tuple[int, ...] = ()  # empty: each instance port + 100 (written out in the inventory)
    with_s3: bool = True
    health_timeout: int = 0  # 0: the inventory's default
    # A cluster on each host instead of one local cluster (devtools/database_pair.py); remembered.
    database_pair: bool = False
    sshd: LocalSshd = field(init=False)
    postgres: LocalPostgres = field(init=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        # The inventory gets the real ports: `standby_ports = []` reads as "no standby" but means +100.
        self.standby_ports = tuple(self.standby_ports) or tuple(port + 100 for port in self.instance_ports)
        self.sshd = LocalSshd(self.base_dir / "sshd", self.addresses)
        self.postgres = LocalPostgres(self.base_dir / "postgres")
        self.database_pair = self.database_pair or (self.base_dir / "db" / "port").exists()
        # A fixed port would fail the second sandbox on this machine (or anything else on it); the
        # hosts' nginx configs name the port, so a sandbox keeps its first choice across `up`s.
        if not self.nginx_port:
            remembered = self.nginx_port_file
            self.nginx_port = (
                int(remembered.read_text()) if remembered.exists() else ports_free_on_all(self.addresses)[0]
            )

    @property
    def nginx_port_file(self) -> Path:
        return self.base_dir / "nginx-port"

    def s3(self):
        """The sandbox's S3 endpoint (moto); its state folder keeps port and pid across `up`/`down`."""
        from devtools.local_s3 import LocalS3

        state_dir = self.base_dir / "s3"
        state_dir.mkdir(parents=True, exist_ok=True)
        return LocalS3(state_dir=state_dir)

    def _start_s3(self) -> None:
        endpoint = self.s3()
        if endpoint.answers():
            return
        endpoint.start()
        endpoint.create_bucket(S3_BUCKET)

    def pair(self):
        from devtools.database_pair import DatabasePair

        names = {f"host-{address.rsplit('.', 1)[1]}": address for address in self.addresses}
        return DatabasePair(self.base_dir / "db", self.sshd.user, names)

    @property
    def inventory_path(self) -> Path:
        return self.base_dir / "inventory.toml"

    @property
    def env_file(self) -> Path:
        return self.base_dir / "app.env"

    def deploy_root(self, address: str) -> Path:
        return self.base_dir / "roots" / address

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        ensure_deploy_user(self.sshd.user)
        self.sshd.start()
        for address in self.addresses:
            root = self.deploy_root(address)
            root.mkdir(parents=True, exist_ok=True)
            chown_tree(root, self.sshd.user)
        make_reachable(self.base_dir / "roots")
        if self.with_s3:
            self._start_s3()
        if self.database_pair:
            self.pair().ensure_primary(APP_ROLE, DATABASE)
        else:
            self.postgres.start()
            if not self.postgres.role_exists(APP_ROLE):
                self.postgres.create_app_role(APP_ROLE)
            if not self.postgres.database_exists(DATABASE):
                self.postgres.create_database(DATABASE, owner=APP_ROLE)
        if not self.env_file.exists():
            self.env_file.write_text(self.env_text())
            self.env_file.chmod(0o600)
        self.nginx_port_file.write_text(str(self.nginx_port))
        self.inventory_path.write_text(self.inventory_text())

    def env_text(self) -> str:
        lines = [
            # Trust authentication on loopback: the role needs no password here.
            "DATABASE_URL="
            + (
                self.pair().url(APP_ROLE, DATABASE)
                if self.database_pair
                else self.postgres.dsn(DATABASE, user=APP_ROLE)
            ),
            f"OAUTH_HASH_KEY={secrets.token_urlsafe(48)}",
            "LOG_FORMAT=json",
        ]
        if self.with_s3:
            lines += [f"{key}={value}" for key, value in self.s3().settings(S3_BUCKET).items()]
        return "\n".join(lines) + "\n"

    def inventory_text(self) -> str:
        ports = ", ".join(str(p) for p in self.instance_ports)
        standby = ", ".join(str(p) for p in self.standby_ports)
        hosts = "".join(
            f'\n[[environments.{ENVIRONMENT}.hosts]]\nname = "host-{address.rsplit(".", 1)[1]}"\n'
            f'address = "{address}"\nbind_address = "{address}"\ndeploy_root = "{self.deploy_root(address)}"\n'
            for address in self.addresses
        )
        return (
            f'# Written by `invoke sandbox up`: the local VPS pair.\ndefault_environment = "{ENVIRONMENT}"\n\n'
            f'[defaults]\nssh_user = "{self.sshd.user}"\nssh_port = {self.sshd.port}\n'
            f'identity_file = "{self.sshd.identity_file}"\nknown_hosts = "{self.sshd.known_hosts}"\n'
            f'instance_ports = [{ports}]\nstandby_ports = [{standby}]\nnginx_port = {self.nginx_port}\npython = "/usr/bin/python3"\n'
            + (f"health_timeout = {self.health_timeout}\n" if self.health_timeout else "")
            + f'backup_schedule = "weekly"\n\n[environments.{ENVIRONMENT}]\n'
            + hosts
            + self.database_table()
        )

    def database_table(self) -> str:
        """The environment's one database table: the pair's clusters on the hosts, or else the
        drill's kill and start of the single cluster, run on this machine (it belongs to a local
        account the hosts' deploy user cannot act as)."""
        if self.database_pair:
            return self.pair().inventory_table(ENVIRONMENT)

        def command(action: str) -> str:
            args = [sys.executable, "-m", "devtools.sandbox", "database", action, str(self.base_dir)]
            return f"cd {shlex.quote(str(REPOSITORY))} && {shlex.join(args)}"

        rows = {"kill": command("stop"), "start": command("start"), "drill_runs_on": "local"}
        body = "".join(f"{key} = {json.dumps(value)}\n" for key, value in rows.items())
        return f"\n[environments.{ENVIRONMENT}.database]\n{body}"

    def stop(self) -> None:
        """Stop every process of the sandbox (app, nginx, supervisord, sshd, PostgreSQL)."""
        from deploy.inventory import load_inventory
        from deploy.provision import unprovision_host
        from deploy.session import Session

        if self.inventory_path.exists():
            try:
                with Session(load_inventory(str(self.inventory_path)).environment(ENVIRONMENT)) as session:
                    session.parallel(unprovision_host)
            except Exception as error:  # sshd may already be gone: the processes are stopped below
                print(f"sandbox: could not stop services over SSH ({error}); stopping directly")
                for address in self.addresses:
                    _stop_services_directly(self.deploy_root(address))
        self.sshd.stop()
        self.postgres.stop()
        if self.database_pair:
            self.pair().stop()
        if self.with_s3 and (self.base_dir / "s3").exists():
            self.s3().stop()

    def destroy(self, crontab_lines: tuple[str, ...] = ()) -> None:
        """Stop everything, drop this sandbox's crontab blocks (and `crontab_lines`), remove its folder.

        Each part runs even when an earlier one fails: a stopped sshd must not leave the blocks
        behind (their @reboot lines would start supervisord from a deleted root), nor the folder."""
        try:
            self.stop()
        finally:
            try:
                self.remove_crontab_entries(crontab_lines)
            finally:
                try:
                    self.postgres.destroy()
                finally:
                    shutil.rmtree(self.base_dir, ignore_errors=True)

    def remove_crontab_entries(self, lines: tuple[str, ...] = ()) -> None:
        """This sandbox's blocks (deploy roots under roots/) and `lines`, from the deploy user's
        crontab on this machine. unprovision_host does it over SSH; this covers an sshd that is gone."""
        roots = self.base_dir / "roots"
        remove_crontab_entries(self.sshd.user, lambda root: is_under(root, roots), lines)


def _stop_services_directly(root: Path) -> None:
    from deploy.commands import Layout, stop_services_command

    if root.exists():
        os.system(stop_services_command(Layout(str(root))))


def up(base_dir: Path, database_pair: bool = False) -> Sandbox:
    sandbox = Sandbox(base_dir, database_pair=database_pair)
    sandbox.start()
    inventory = sandbox.inventory_path
    where = (
        f"a PostgreSQL cluster on each host (port {sandbox.pair().port})"
        if sandbox.database_pair
        else f"PostgreSQL on 127.0.0.1:{sandbox.postgres.port}"
    )
    print(
        f"sandbox up: hosts {', '.join(f'{a}:{sandbox.sshd.port}' for a in sandbox.addresses)} "
        f"(user {sandbox.sshd.user}), {where}"
    )
    print("next:")
    print(f"  export CLICKNBACK_INVENTORY={inventory}")
    print(f"  invoke provision --env-file {sandbox.env_file}")
    print("  git tag v0.1.0 && invoke deploy --tag v0.1.0")
    print(f"  curl http://{sandbox.addresses[0]}:{sandbox.nginx_port}/health/ready")
    print("  git tag v0.1.1 && invoke deploy --tag v0.1.1   # a second release, to have one to roll back to")
    print("  invoke releases; invoke health; invoke rollback")
    if sandbox.database_pair:
        print("  invoke standby --host host-3 --synchronous; invoke drill --failover   # docs/disaster-recovery.md")
    return sandbox


def down(base_dir: Path) -> None:
    Sandbox(base_dir).destroy()
    print(f"sandbox down: stopped everything and removed {Path(base_dir).resolve()}")


def database(action: str, base_dir: Path) -> str:
    """The drill's `stop` (pg_ctl -m immediate, so the start is a crash recovery) or `start` of the
    sandbox's cluster."""
    postgres = LocalPostgres(Path(base_dir) / "postgres")
    if action == "stop":
        postgres.stop("immediate")
        return f"pg_ctl stop -m immediate (no checkpoint) on port {postgres.port}"
    postgres.start()
    return "pg_ctl start: crash recovery, accepting connections"


if __name__ == "__main__":
    # `python -m devtools.sandbox database stop|start BASE_DIR`: the commands the sandbox's inventory
    # gives the failover drill.
    if len(sys.argv) != 4 or sys.argv[1] != "database" or sys.argv[2] not in ("stop", "start"):
        sys.exit("usage: python -m devtools.sandbox database stop|start BASE_DIR")
    print(database(sys.argv[2], Path(sys.argv[3])))

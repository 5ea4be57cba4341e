"""E2E fixtures for point-in-time recovery: one sshd host, its cluster archiving to moto over HTTP.

`provision --pitr` runs as an admin through sudo, as on a VPS whose operator logs in as a sudoer:
the fixture lets the deploy user sudo for the module's duration (its own sudoers file, removed
afterwards). The inventory's `pitr` table names the cluster's account (the throwaway cluster runs
as an unprivileged user), its TCP port, one folder for PITR's files and unique cron/sudoers
names, so concurrent sessions on this machine never share them. The cluster starts with
archive_mode on, the one setting provision would restart a Debian cluster for (with systemctl).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.local_postgres import UNPRIVILEGED_USER
from devtools.local_s3 import LocalS3
from devtools.sample_data import sample_data_sql
from devtools.sandbox import DATABASE, Sandbox
from tests.e2e.backup.conftest import BackupWorld, TaskResult
from tests.support.gitrepo import commit_and_tag, export_head
from tests.support.sshd import seed_shared_venv, started_sandbox

ADDRESSES = ("127.0.0.10",)
BUCKET = "e2e-pitr"
TAG = "v1.0.0"
ARCHIVING = "-c wal_level=replica -c archive_mode=on"
ENCRYPTION_KEY = "pitr-e2e-key-0123456789-never-printed-abcdef"

pytestmark = pytest.mark.e2e


@dataclass
class PitrWorld(BackupWorld):
    pitr_dir: Path = Path()

    def task(self, *args: str, check: bool = True, timeout: float = 300) -> TaskResult:
        """As BackupWorld's, with the cluster's and PITR's log tails when it fails or hangs."""
        try:
            result = super().task(*args, check=False, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"invoke {' '.join(args)} timed out\n{error.output!r}\n{self.logs()}") from None
        if check and result.returncode != 0:
            raise AssertionError(f"invoke {' '.join(args)} failed:\n{result.output}\n{self.logs()}")
        return result

    def logs(self) -> str:
        tails = []
        for path in (self.sandbox.postgres.log_file, self.pitr_dir / "pitr.log"):
            if path.exists():
                tails.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-25:]))
        return "\n".join(tails)

    def scratch_folders(self) -> list[Path]:
        return sorted((self.pitr_dir / "scratch").glob("restore-*"))


def _grant_sudo(path: Path, user: str) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    staged.chmod(0o440)
    subprocess.run(["visudo", "-cqf", str(staged)], check=True, capture_output=True)
    staged.rename(path)


def pitr_table(sandbox: Sandbox, name: str) -> dict[str, object]:
    """The PITR keys of the inventory's database table for the sandbox's cluster: run by an
    unprivileged account, stopped and started with pg_ctl (with the options LocalPostgres starts it with)."""
    postgres = sandbox.postgres
    options = (
        f"-c listen_addresses={postgres.host} -c port={postgres.port} -c unix_socket_directories={postgres.run_dir} "
        f"-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=300 {ARCHIVING}"
    )
    pg_ctl = f"cd / && sudo -n -u {UNPRIVILEGED_USER} {postgres.bindir}/pg_ctl"
    return {
        "account": UNPRIVILEGED_USER,
        "socket_dir": str(postgres.run_dir),
        "port": postgres.port,
        "pitr_name": name,
        "pitr_dir": str(sandbox.base_dir / "pitr"),
        "data_dir": str(postgres.data_dir),
        "stop": f"{pg_ctl} stop -D {postgres.data_dir} -m fast -w",
        "start": f"{pg_ctl} start -D {postgres.data_dir} -l {postgres.log_file} -o {shlex.quote(options)} -w -t 120",
    }


@pytest.fixture(scope="module")
def pitr_world(tmp_path_factory) -> Iterator[PitrWorld]:
    if os.geteuid() != 0:
        pytest.skip("provision --pitr is a root setup: this test grants the deploy user sudo, which needs root")
    repo = tmp_path_factory.mktemp("pitr-repo")
    export_head(repo)
    commit_and_tag(repo, TAG, "e2e pitr release")
    name = f"clicknback-pitr-e2e-{secrets.token_hex(4)}"
    written = [Path(f"/etc/sudoers.d/{name}-admin"), Path(f"/etc/sudoers.d/{name}"), Path(f"/etc/cron.d/{name}")]
    # The endpoint outlives the sandbox: a cluster whose archiver cannot reach it does not stop.
    moto_log = tmp_path_factory.mktemp("pitr-moto") / "moto.log"
    with LocalS3(log_file=moto_log) as s3, started_sandbox(ADDRESSES) as sandbox:
        try:
            s3.create_bucket(BUCKET)
            sandbox.postgres.stop()
            sandbox.postgres.start(ARCHIVING)
            settings = {
                **s3.settings(BUCKET),
                "BACKUP_ENCRYPTION_KEY": ENCRYPTION_KEY,
                "PITR_PREFIX": "pitr",
                "PURCHASE_JOB_ENABLED": "false",
            }
            with sandbox.env_file.open("a") as env_file:
                env_file.writelines(f"{key}={value}\n" for key, value in settings.items())
            pitr_dir = sandbox.base_dir / "pitr"
            # The sandbox's database table ends the file: this one replaces it (the drill keys kept).
            inventory, heading = sandbox.inventory_path.read_text(), "\n[environments.sandbox.database]\n"
            kept = {
                k: v for k, v in tomllib.loads(inventory)["environments"]["sandbox"]["database"].items() if k != "start"
            }
            rows = "".join(f"{k} = {json.dumps(v)}\n" for k, v in {**kept, **pitr_table(sandbox, name)}.items())
            sandbox.inventory_path.write_text(inventory[: inventory.index(heading)] + heading + rows)
            _grant_sudo(written[0], sandbox.sshd.user)
            seed_shared_venv(sandbox, (repo / "requirements.lock").read_bytes())
            world = PitrWorld(sandbox, s3, repo, pitr_dir=pitr_dir)
            world.task("provision", "--env-file", str(sandbox.env_file), timeout=600)
            world.task("deploy", "--tag", TAG, timeout=900)
            sandbox.postgres.psql(sample_data_sql(users=40, purchases=300, audit_rows=100), DATABASE)
            yield world
        finally:
            for path in written:
                path.unlink(missing_ok=True)

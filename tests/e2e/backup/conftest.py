"""E2E fixtures for backups: two sshd hosts with a deployed release, moto on loopback, task runners.

The sandbox uses its own loopback addresses (127.0.0.6/7) so it can run beside the deploy e2e suite.
The hosts' shared/.env carries the S3 settings of a moto endpoint; the invoke tasks run over SSH
exactly as an operator runs them against a VPS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.local_s3 import LocalS3
from devtools.sample_data import sample_data_sql
from devtools.sandbox import DATABASE, Sandbox
from tests.support.gitrepo import commit_and_tag, export_head
from tests.support.sshd import seed_shared_venv

PROJECT = Path(__file__).resolve().parents[3]
ADDRESSES = ("127.0.0.6", "127.0.0.7")
BUCKET = "e2e-backups"
TAG = "v1.0.0"
NGINX_PORT = 8090

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def backup_repo(tmp_path_factory) -> Path:
    """The committed tree (HEAD: what a tag would hold, without anyone's unfinished edits), tagged."""
    path = tmp_path_factory.mktemp("backup-repo")
    export_head(path)
    if os.environ.get("CLICKNBACK_E2E_LOCK_FILE"):  # try a candidate lock file without committing it
        shutil.copy(os.environ["CLICKNBACK_E2E_LOCK_FILE"], path / "requirements.lock")
    if not (path / "requirements.lock").exists():
        pytest.skip("requirements.lock is not in the tree: deploys install from it")
    return commit_and_tag(path, TAG, "e2e backup release")


@dataclass
class TaskResult:
    returncode: int
    output: str


@dataclass
class BackupWorld:
    sandbox: Sandbox
    s3: LocalS3
    repo: Path

    def task(self, *args: str, check: bool = True, timeout: float = 300) -> TaskResult:
        """`invoke <task> ...` from the released repo (its tasks.py), as an operator runs it."""
        env = {**os.environ, "CLICKNBACK_INVENTORY": str(self.sandbox.inventory_path), "PYTHONUNBUFFERED": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        if check and result.returncode != 0:
            raise AssertionError(f"invoke {' '.join(args)} failed ({result.returncode}):\n{output}")
        return TaskResult(result.returncode, output)

    def host_env_files(self) -> list[Path]:
        return [self.sandbox.deploy_root(address) / "shared" / ".env" for address in ADDRESSES]

    def set_host_env(self, **values: str) -> None:
        """Edit the hosts' shared/.env in place (as an operator would), keeping owner and mode."""
        for path in self.host_env_files():
            lines = [line for line in path.read_text().splitlines() if line.split("=", 1)[0] not in values]
            lines += [f"{key}={value}" for key, value in values.items() if value is not None]
            stat = path.stat()
            path.write_text("\n".join(lines) + "\n")
            os.chown(path, stat.st_uid, stat.st_gid)
            path.chmod(0o600)

    def psql(self, sql: str, database: str = DATABASE) -> str:
        return self.sandbox.postgres.psql(sql, database)


@pytest.fixture(scope="session")
def world(backup_repo: Path) -> BackupWorld:
    base = Path(tempfile.mkdtemp(prefix="cnb-e2e-backup-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    sandbox = Sandbox(base / "sandbox", addresses=ADDRESSES, nginx_port=NGINX_PORT, with_s3=False)
    s3 = LocalS3(log_file=base / "moto.log", env={"S3_UPLOAD_PART_MIN_SIZE": str(64 * 1024)})
    try:
        s3.start()
        s3.create_bucket(BUCKET)
        sandbox.start()
        settings = {
            **s3.settings(BUCKET),
            "BACKUP_PART_SIZE": "64K",
            "BACKUP_PREFIX": "db/",
            "BACKUP_MIN_KEEP": "2",
            # The verification job would change purchases after a backup: keep the data still.
            "PURCHASE_JOB_ENABLED": "false",
        }
        with sandbox.env_file.open("a") as env_file:
            env_file.writelines(f"{key}={value}\n" for key, value in settings.items())
        seed_shared_venv(sandbox, (backup_repo / "requirements.lock").read_bytes())
        world = BackupWorld(sandbox, s3, backup_repo)
        world.task("provision", "--env-file", str(sandbox.env_file), timeout=600)
        world.task("deploy", "--tag", TAG, timeout=900)
        sandbox.postgres.psql(sample_data_sql(users=40, purchases=300, audit_rows=100), DATABASE)
        yield world
    finally:
        try:
            sandbox.destroy()  # also drops the sandbox's crontab blocks
        finally:
            try:
                s3.stop()
            finally:
                shutil.rmtree(base, ignore_errors=True)

"""PITR fixtures: moto over HTTP, and a primary of its own that archives its WAL through barman-cloud.

The primary is a separate cluster (archive_mode needs a restart, which the session's shared cluster
must not take). PostgreSQL's account runs archive_command with the system python3, as on a host.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.ops.pitr import barman
from devtools.local_postgres import UNPRIVILEGED_USER, LocalPostgres, give_to_cluster_user
from devtools.local_s3 import LocalS3

ROOT = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = "/usr/bin/python3"
ENCRYPTION_KEY = "pitr-key-0123456789-never-printed-abcdef"
BUCKET = "pitr-tests"


def cluster_os_user() -> str | None:
    return UNPRIVILEGED_USER if os.geteuid() == 0 else None


@dataclass
class Archive:
    """A primary archiving to moto, the settings it uses and the commands a restore needs."""

    primary: LocalPostgres
    settings: barman.PitrSettings
    env_file: Path
    root: Path

    def wal_command(self, action: str) -> str:
        return barman.wal_command(SYSTEM_PYTHON, str(ROOT), str(self.env_file), action)

    def wait_archived(self, timeout: float = 60.0) -> str:
        """Close the current segment and wait until the archiver has shipped it."""
        segment = self.primary.psql("SELECT pg_walfile_name(pg_switch_wal())")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.primary.psql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver")
            last, _failed = row.split("|")
            if last and last[8:] >= segment[8:]:
                return segment
            time.sleep(0.1)
        log = self.primary.log_file.read_text(errors="replace").splitlines()[-20:]
        raise AssertionError(f"segment {segment} not archived within {timeout:.0f}s:\n" + "\n".join(log))


@pytest.fixture(scope="module")
def archive_s3(pitr_root: Path) -> Iterator[LocalS3]:
    if not Path(SYSTEM_PYTHON).exists() or shutil.which("barman-cloud-wal-archive") is None:
        pytest.fail("barman-cloud is not installed: run .ci/system-packages (Debian barman-cli-cloud)")
    with LocalS3(log_file=pitr_root / "moto.log") as s3:
        s3.create_bucket(BUCKET)
        yield s3


@pytest.fixture(scope="module")
def pitr_root() -> Iterator[Path]:
    """A folder of our own: pytest prunes old /tmp/pytest-of-USER/pytest-N folders, and a parallel
    pytest run of the same user would delete a cluster's files under a running PostgreSQL."""
    root = Path(tempfile.mkdtemp(prefix="clicknback-pitr-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def archive(pitr_root: Path, archive_s3: LocalS3) -> Iterator[Archive]:
    root = Path(tempfile.mkdtemp(prefix="case-", dir=pitr_root))
    root.chmod(0o711)
    prefix = f"pitr-{root.name}"
    env = {**archive_s3.settings(BUCKET), "PITR_PREFIX": prefix, "BACKUP_ENCRYPTION_KEY": ENCRYPTION_KEY}
    env_file = root / "pitr.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    give_to_cluster_user(env_file)
    env_file.chmod(0o600)
    primary = LocalPostgres(root / "primary")
    primary.start()
    archive = Archive(primary, barman.load_pitr_settings(env), env_file, root)
    for statement in barman.alter_system_sql(barman.archive_settings(archive.wal_command("push"))):
        primary.psql(statement)
    primary.stop()
    primary.start()  # archive_mode takes effect on a restart only
    try:
        yield archive
    finally:
        primary.destroy()

"""The test suite's PostgreSQL: one throwaway cluster per session, one database per test.

The cluster is migrated once into a template database with Aerich (the real migrations);
each test gets a fresh copy of the template, so tests never share data.

The cluster lives on tmpfs (/dev/shm) when the machine has one with room to spare. On ext4 a copy
took 0.32-0.46 s instead of 0.03 s: each test's database is ~300 files, and after the previous
test dropped its own, ext4's inode allocator scans past every recently deleted inode for each new
file (`recently_deleted` was 55% of the backend's CPU in `perf`). Over ~1,000 tests that was about
six minutes of the suite. CLICKNBACK_TEST_PG_ROOT overrides the folder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from deploy.local_postgres import LocalPostgres
from server import db_migrations

TEMPLATE = "cnb_template"
TMPFS = "/dev/shm"
TMPFS_ROOM_NEEDED = 2 * 1024**3  # the template, a few live copies and max_wal_size, with margin
# In RAM, a checkpoint is cheap and keeps the WAL small: each copy writes the template (8.5 MB) to it.
CLUSTER_OPTIONS = "-c max_wal_size=256MB"


def cluster_root() -> str | None:
    """The folder for the session's cluster: the override, else tmpfs with room, else the default temp dir."""
    override = os.environ.get("CLICKNBACK_TEST_PG_ROOT")
    if override:
        return override
    try:
        stats = os.statvfs(TMPFS)
    except OSError:
        return None
    if stats.f_bavail * stats.f_frsize >= TMPFS_ROOM_NEEDED and os.access(TMPFS, os.W_OK | os.X_OK):
        return TMPFS
    return None


class TestDatabases:
    def __init__(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="cnb-test-pg-", dir=cluster_root()))
        os.chmod(base, 0o755)
        self.cluster = LocalPostgres(base / "cluster")
        self._base = base

    def start(self) -> None:
        self.cluster.start(CLUSTER_OPTIONS)
        self.cluster.create_database(TEMPLATE)
        asyncio.run(db_migrations.upgrade(self.cluster.dsn(TEMPLATE)))

    def create(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.cluster.create_database(name, template=TEMPLATE)
        return name

    def create_empty(self, prefix: str = "e") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.cluster.create_database(name)
        return name

    def url(self, name: str) -> str:
        return self.cluster.dsn(name)

    def socket_url(self, name: str) -> str:
        return self.cluster.socket_dsn(name)

    def drop(self, name: str) -> None:
        self.cluster.drop_database(name)

    def stop(self) -> None:
        self.cluster.destroy()
        shutil.rmtree(self._base, ignore_errors=True)

"""The test suite's PostgreSQL: one throwaway cluster per session, one database per test.

The cluster is migrated once into a template database with Aerich (the real migrations);
each test gets a fresh copy of the template, so tests never share data.

The cluster lives on tmpfs (/dev/shm) when the machine has one with room to spare. On ext4 a copy
took 0.32-0.46 s instead of 0.03 s: each test's database is ~300 files, and after the previous
test dropped its own, ext4's inode allocator scans past every recently deleted inode for each new
file (`recently_deleted`, with what it calls, was 65% of the backend's CPU in `perf`). Over ~1,000
tests that was about six minutes of the suite. CLICKNBACK_TEST_PG_ROOT overrides the folder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncpg

from devtools.local_postgres import LocalPostgres
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


class AdminConnection:
    """One superuser connection to the cluster, on an event loop of its own thread, so that sync
    fixtures and async tests alike can call it. A psql process per statement cost ~20 ms, twice per
    test."""

    def __init__(self, dsn: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-db-admin", daemon=True)
        self._thread.start()
        self._conn: asyncpg.Connection = self._run(asyncpg.connect(dsn))

    def _run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=120)

    def execute(self, sql: str) -> None:
        self._run(self._conn.execute(sql))

    def close(self) -> None:
        try:
            self._run(self._conn.close(timeout=10))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


class TestDatabases:
    def __init__(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="cnb-test-pg-", dir=cluster_root()))
        os.chmod(base, 0o755)
        self.cluster = LocalPostgres(base / "cluster")
        self._base = base
        self._admin: AdminConnection | None = None

    def start(self) -> None:
        self.cluster.start(CLUSTER_OPTIONS)
        self.cluster.create_database(TEMPLATE)
        asyncio.run(db_migrations.upgrade(self.cluster.dsn(TEMPLATE)))
        self._admin = AdminConnection(self.cluster.dsn())

    def create(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return name

    def create_empty(self, prefix: str = "e") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def url(self, name: str) -> str:
        return self.cluster.dsn(name)

    def socket_url(self, name: str) -> str:
        return self.cluster.socket_dsn(name)

    def drop(self, name: str) -> None:
        self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        self.cluster.destroy()
        shutil.rmtree(self._base, ignore_errors=True)

"""The test suite's PostgreSQL: one throwaway cluster per session, one database per test.

The cluster is migrated once into a template database with Aerich (the real migrations);
each test gets a fresh copy of the template (about 0.1 s), so tests never share data.
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


class TestDatabases:
    def __init__(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="cnb-test-pg-"))
        os.chmod(base, 0o755)
        self.cluster = LocalPostgres(base / "cluster")
        self._base = base

    def start(self) -> None:
        self.cluster.start()
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

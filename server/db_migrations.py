"""Aerich migrations driven from code: upgrade, downgrade to a number, status, code head.

The only way the schema changes. Used by `invoke serve`, the test suite, the readiness probe
(code head) and the VPS-side `clicknback-ops migrate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from server.db import parse_database_url, tortoise_config

if TYPE_CHECKING:
    from aerich import Command

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
APP = "models"


def migration_files() -> list[str]:
    """This code's migration file names, oldest first (Aerich's own ordering rule)."""
    files = [
        path.name
        for path in (MIGRATIONS_DIR / APP).glob("*.py")
        if "_" in path.stem and path.stem.split("_")[0].isdigit()
    ]
    return sorted(files, key=lambda name: int(name.split("_")[0]))


def code_head() -> str:
    return migration_files()[-1]


def migration_number(file_name: str) -> int:
    return int(file_name.split("_")[0])


@dataclass(frozen=True)
class MigrationStatus:
    code_head: str
    db_head: str | None
    applied: list[str]
    pending: list[str]

    def as_dict(self) -> dict:
        return {
            "code_head": self.code_head,
            "code_head_number": migration_number(self.code_head),
            "db_head": self.db_head,
            "db_head_number": migration_number(self.db_head) if self.db_head else None,
            "applied": self.applied,
            "pending": self.pending,
        }


async def db_head_on(connection: asyncpg.Connection) -> str | None:
    """The newest applied migration, or None on a database that has none."""
    exists = await connection.fetchval("SELECT to_regclass('public.aerich') IS NOT NULL")
    if not exists:
        return None
    return await connection.fetchval("SELECT version FROM aerich WHERE app = $1 ORDER BY id DESC LIMIT 1", APP)


async def _applied(database_url: str) -> list[str]:
    params = parse_database_url(database_url)
    connection = await asyncpg.connect(**params)
    try:
        if not await connection.fetchval("SELECT to_regclass('public.aerich') IS NOT NULL"):
            return []
        rows = await connection.fetch("SELECT version FROM aerich WHERE app = $1 ORDER BY id", APP)
        return [row["version"] for row in rows]
    finally:
        await connection.close()


async def status(database_url: str) -> MigrationStatus:
    applied = await _applied(database_url)
    pending = [name for name in migration_files() if name not in applied]
    return MigrationStatus(code_head(), applied[-1] if applied else None, applied, pending)


def _command(database_url: str) -> Command:
    from aerich import Command  # imported here: the serving process only reads code_head()

    # Run inside a TortoiseContext of its own: Aerich initialises and closes Tortoise, and the
    # service's context (or an earlier migration's) must be left alone.
    return Command(tortoise_config(database_url, 1, 2), app=APP, location=str(MIGRATIONS_DIR))


async def upgrade(database_url: str) -> list[str]:
    """Apply every pending migration, each in its own transaction. Returns the files applied."""
    from tortoise.context import TortoiseContext

    async with TortoiseContext(), _command(database_url) as command:
        return await command.upgrade(run_in_transaction=True)


async def downgrade_to(database_url: str, number: int) -> list[str]:
    """Downgrade until migration `number` is the newest applied. Returns the files undone."""
    applied = await _applied(database_url)
    newer = [name for name in applied if migration_number(name) > number]
    if not newer:
        return []
    if number not in {migration_number(name) for name in applied}:
        raise ValueError(f"migration {number} is not applied in this database")
    first_to_undo = min(migration_number(name) for name in newer)
    from tortoise.context import TortoiseContext

    async with TortoiseContext(), _command(database_url) as command:
        return await command.downgrade(first_to_undo, delete=False)

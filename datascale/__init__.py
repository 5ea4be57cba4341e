"""A database at production's scale, generated set-based: the data behind `make bench DATA=large`.

Lives outside bench/ so the tests can run the very SQL the bench runs (issue #21: no test imports
bench/). The SQL is datascale/generate.sql, split into named steps; `generate` runs them on one
connection and reports each step's time, so an operator sees where the minutes go.

Bulk loading is fastest without the secondary indexes: `generate` drops every index that no
constraint owns on the big tables, loads, then recreates each from its own definition as the
migrations made it (pg_indexes), and finally VACUUM ANALYZE, so the planner and the visibility map
look as they would on a long-running production database.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SQL_FILE = Path(__file__).with_name("generate.sql")
BULK_TABLES = ("purchases", "cashback_transactions", "audit_logs")


@dataclass(frozen=True)
class Scale:
    """How much to generate. `heavy_purchases` go to one user; `purchases` must be a multiple of it."""

    users: int
    purchases: int
    heavy_purchases: int
    merchants: int
    span_days: int = 1095
    pending_tail: int = 5_000

    def check(self) -> None:
        if self.users < 34:
            raise ValueError("users must be at least 34 (the heavy user and bench0..bench31 come first)")
        if self.heavy_purchases < 1 or self.purchases % self.heavy_purchases:
            raise ValueError("purchases must be a positive multiple of heavy_purchases")
        if not 0 <= self.pending_tail <= self.purchases or self.merchants < 1 or self.span_days < 1:
            raise ValueError("pending_tail, merchants or span_days out of range")


# Issue #24: 10 million purchases over 100,000 users, one of whom has 100,000.
LARGE = Scale(users=100_000, purchases=10_000_000, heavy_purchases=100_000, merchants=1_000)


def heavy_user_email() -> str:
    return "heavy@example.test"


def steps(scale: Scale, anchor: datetime) -> list[tuple[str, str]]:
    """(name, SQL) of each step, with every :name replaced by its literal (integers and one timestamp)."""
    scale.check()
    values = {
        "anchor": f"'{anchor.astimezone(UTC).isoformat()}'",
        "users": str(scale.users),
        "purchases": str(scale.purchases),
        "heavy_every": str(scale.purchases // scale.heavy_purchases),
        "merchants": str(scale.merchants),
        "span_seconds": str(scale.span_days * 86_400),
        "pending_tail": str(scale.pending_tail),
    }
    text = SQL_FILE.read_text()
    rendered = re.sub(r"(?<!:):([a-z_]+)\b", lambda match: values.get(match[1], match[0]), text)
    parts = re.split(r"^-- step: (.+)$", rendered, flags=re.MULTILINE)
    return [(name.strip(), sql.strip()) for name, sql in zip(parts[1::2], parts[2::2])]


def source_text() -> str:
    """What the generated rows depend on in this package, for a cache key: the SQL (the Python
    around it only orders the steps and rebuilds indexes from the catalogue)."""
    return SQL_FILE.read_text()


async def secondary_indexes(conn: Any) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every index on the bulk tables that no constraint owns."""
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = ANY($1::text[]) AND indexname NOT IN (SELECT conname FROM pg_constraint) "
        "ORDER BY tablename, indexname",
        list(BULK_TABLES),
    )
    return [(row["indexname"], row["indexdef"]) for row in rows]


async def generate(
    conn: Any, scale: Scale, anchor: datetime | None = None, progress: Callable[[str], None] = print
) -> dict[str, float]:
    """Generate `scale` on the migrated database behind `conn` (asyncpg, superuser: the load runs
    with triggers off). Returns seconds per step. Not idempotent: run it once per database."""
    anchor = anchor or datetime.now(UTC)
    timings: dict[str, float] = {}

    async def timed(name: str, sql: str) -> None:
        started = time.monotonic()
        progress(f"  {name} ...")
        await conn.execute(sql)
        timings[name] = time.monotonic() - started
        progress(f"  {name}: {timings[name]:.1f} s")

    indexes = await secondary_indexes(conn)
    for name, _ in indexes:
        await conn.execute(f'DROP INDEX "{name}"')
    for name, sql in steps(scale, anchor):
        await timed(name, sql)
    for name, definition in indexes:
        await timed(f"index {name}", definition)
    for table in (
        *BULK_TABLES,
        "payouts",
        "users",
        "wallets",
        "cashback_monthly_totals",
        "purchase_month_counts",
        "purchase_day_counts",
        "audit_day_counts",
    ):
        await timed(f"vacuum analyze {table}", f"VACUUM (ANALYZE) {table}")
    return timings


# What release_spare_wal keeps: PostgreSQL's floor is two segments (16 MB each).
SPARE_WAL = ("64MB", "32MB")


async def release_spare_wal(conn: Any) -> None:
    """Checkpoint with a small max_wal_size, so the bulk load's WAL segments are removed instead of
    recycled into spares (a checkpoint keeps up to max_wal_size of them, and no later checkpoint
    removes a spare), then restore the cluster's own settings. A cached cluster copied per run
    then carries its data only. max_wal_size must not be set on the command line, which
    ALTER SYSTEM cannot override."""
    await conn.execute(f"ALTER SYSTEM SET max_wal_size = '{SPARE_WAL[0]}'")
    await conn.execute(f"ALTER SYSTEM SET min_wal_size = '{SPARE_WAL[1]}'")
    try:
        await conn.execute("SELECT pg_reload_conf()")
        if not await _settled(conn, SPARE_WAL[0]):
            raise RuntimeError("max_wal_size did not take ALTER SYSTEM's value: is it set on the command line?")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.execute("ALTER SYSTEM RESET max_wal_size")
        await conn.execute("ALTER SYSTEM RESET min_wal_size")
        await conn.execute("SELECT pg_reload_conf()")


async def _settled(conn: Any, wanted: str, seconds: float = 10.0) -> bool:
    """Whether the postmaster's reload reached this session (it is asynchronous) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await conn.fetchval("SELECT current_setting('max_wal_size')") == wanted:
            return True
        await asyncio.sleep(0.05)
    return False

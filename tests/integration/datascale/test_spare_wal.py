"""datascale.release_spare_wal on a cluster of its own: after a bulk load written with a large
max_wal_size and no checkpoint, the cluster that is stopped (and cached, then copied per bench run)
keeps no spare WAL segments, and ALTER SYSTEM's WAL settings are reset."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import asyncpg

import datascale

WAL_SUM = "SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()"
MB = 1024 * 1024


async def test_a_bulk_load_leaves_no_spare_wal():
    from devtools.local_postgres import LocalPostgres

    # Outside pytest's tmp_path, which concurrent pytest runs may prune under a running cluster.
    base = Path(tempfile.mkdtemp(prefix="cnb-wal-"))
    os.chmod(base, 0o755)
    cluster = LocalPostgres(base / "pg")
    await asyncio.to_thread(cluster.start, "-c checkpoint_timeout=1h")
    try:
        conn = await asyncpg.connect(cluster.dsn())
        try:
            await conn.execute("ALTER SYSTEM SET max_wal_size = '1GB'")
            await conn.execute("ALTER SYSTEM SET min_wal_size = '512MB'")
            await conn.execute("SELECT pg_reload_conf()")
            # About 200 MB of WAL with no checkpoint in between, as the generator's load writes it.
            await conn.execute(
                "CREATE TABLE load AS SELECT n, repeat('x', 60) AS pad FROM generate_series(1, 1500000) AS n"
            )
            assert await conn.fetchval(WAL_SUM) > 150 * MB

            await datascale.release_spare_wal(conn)

            assert await conn.fetchval(WAL_SUM) <= 64 * MB
            overridden = await conn.fetch(
                "SELECT name FROM pg_file_settings WHERE name IN ('max_wal_size', 'min_wal_size') "
                "AND sourcefile LIKE '%postgresql.auto.conf'"
            )
            assert overridden == []  # the load's own settings are gone, as the generator wants
            # The reload reaches this session asynchronously: poll, bounded.
            deadline = time.monotonic() + 10
            while await conn.fetchval("SELECT current_setting('max_wal_size')") != "1GB":
                assert time.monotonic() < deadline, "the reset max_wal_size never reached the session"
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(cluster.destroy)
        os.rmdir(base)

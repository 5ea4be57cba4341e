"""`--data-size large`: the bench's PostgreSQL with datascale.LARGE generated in it, built once and
cached for reruns.

The cache is a stopped cluster folder under .local/bench-data/<key>/, where the key hashes everything
the data depends on: the migrations, the demo seed, the generator (datascale/) and PostgreSQL's
version. A run copies that folder into its own work folder and starts it there, so scenarios that
write (ingestion, the job backlog) never touch the cache; a changed migration or generator builds a
new one and removes the stale ones (each is ~15 GB, with no spare WAL). `python -m bench.data_size` builds it ahead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

import datascale  # noqa: E402
from devtools.local_postgres import LocalPostgres, free_port  # noqa: E402

CACHE_ROOT = PROJECT_ROOT / ".local" / "bench-data"
DATABASE = "bench"
# Generation only: memory for the index builds and no checkpoint mid-load. The runs themselves
# start the copy with the bench's usual settings. max_wal_size is set by ALTER SYSTEM instead (see
# _migrate_seed_generate): on the command line it could not be lowered before the stop.
GENERATION_OPTIONS = (
    "-c shared_buffers=2GB -c maintenance_work_mem=1GB -c checkpoint_timeout=1h "
    "-c wal_level=minimal -c max_wal_senders=0 -c autovacuum=off -c max_parallel_maintenance_workers=1"
)
LOAD_MAX_WAL_SIZE = "32GB"


def cache_key(scale: datascale.Scale) -> str:
    digest = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "migrations" / "models").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update((PROJECT_ROOT / "server" / "seed.py").read_bytes())
    digest.update(datascale.source_text().encode())
    digest.update(repr(scale).encode())
    from devtools.local_postgres import find_pg_bindir

    version = subprocess.run([str(find_pg_bindir() / "postgres"), "--version"], capture_output=True, text=True)
    digest.update(version.stdout.encode())
    return digest.hexdigest()[:16]


def cached(scale: datascale.Scale = datascale.LARGE) -> Path:
    """The cached cluster folder for `scale`, generating it first when missing (with progress)."""
    key = cache_key(scale)
    final = CACHE_ROOT / key
    if (final / "generated.json").exists():
        info = json.loads((final / "generated.json").read_text())
        print(f"data: cached {final} (generated in {info['seconds']:.0f} s)", flush=True)
        return final
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    for stale in CACHE_ROOT.iterdir():
        if stale.name != key:
            print(f"data: removing stale cache {stale}", flush=True)
            stale_cluster = LocalPostgres(stale / "pg", port=free_port())
            stale_cluster.destroy()
            shutil.rmtree(stale, ignore_errors=True)
    building = CACHE_ROOT / f"{key}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    cluster = LocalPostgres(building / "pg", port=free_port())
    started = time.monotonic()
    print(f"data: generating {scale} into {building} (once; later runs copy it)", flush=True)
    try:
        cluster.start(GENERATION_OPTIONS)
        cluster.create_database(DATABASE)
        asyncio.run(_migrate_seed_generate(cluster.dsn(DATABASE), scale))
        sizes = cluster.psql("SELECT pg_size_pretty(pg_database_size(current_database()))", database=DATABASE)
        cluster.stop()
    except BaseException:
        cluster.destroy()
        shutil.rmtree(building, ignore_errors=True)
        raise
    seconds = time.monotonic() - started
    (building / "generated.json").write_text(json.dumps({"scale": repr(scale), "seconds": seconds, "size": sizes}))
    building.rename(final)
    print(f"data: generated in {seconds:.0f} s, database {sizes}", flush=True)
    return final


async def _migrate_seed_generate(url: str, scale: datascale.Scale) -> None:
    import asyncpg

    from server import db_migrations
    from server.db import parse_database_url
    from server.seed import load_demo_seed

    await db_migrations.upgrade(url)
    await load_demo_seed(url)
    conn = await asyncpg.connect(**parse_database_url(url))
    try:
        await conn.execute(f"ALTER SYSTEM SET max_wal_size = '{LOAD_MAX_WAL_SIZE}'")
        await conn.execute("SELECT pg_reload_conf()")
        await datascale.generate(conn, scale, progress=lambda line: print(f"data: {line}", flush=True))
        # Without this the cache kept ~14 GB of recycled WAL beside 15 GB of data, copied on every run.
        await datascale.release_spare_wal(conn)
    finally:
        await conn.close()


def cluster_from_cache(base_dir: Path, scale: datascale.Scale = datascale.LARGE) -> LocalPostgres:
    """A copy of the cached cluster at `base_dir` (which must not exist), on a free port."""
    source = cached(scale) / "pg"
    started = time.monotonic()
    print(f"data: copying the cached cluster to {base_dir} ...", flush=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(base_dir)], check=True)
    (base_dir / "port").unlink(missing_ok=True)
    print(f"data: copied in {time.monotonic() - started:.0f} s", flush=True)
    return LocalPostgres(base_dir, port=free_port())


if __name__ == "__main__":
    cached()

"""Backup benchmark: ~1 million rows of the real schema, backup vs plain pg_dump, restore, verify.

    .venv/bin/python bench/backup_bench.py [--scale 1.0] [--keep]

Starts a throwaway PostgreSQL (devtools/local_postgres.py) migrated with the real Aerich migrations
and moto on loopback (devtools/local_s3.py), fills the database with generate_series, then in the
same run measures: `pg_dump -Fc > /dev/null` (the reference), `clicknback-ops backup` (time, MB/s,
peak RSS of the CLI process and of its whole process tree), `restore` into a new database, and
`verify-backup`. Prints one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.local_postgres import LocalPostgres  # noqa: E402
from devtools.local_s3 import LocalS3  # noqa: E402
from devtools.sample_data import sample_data_sql  # noqa: E402

BUCKET = "bench-backups"


def _timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, shell: bool = False) -> dict:
    """Run a process to completion; its wall time."""
    started = time.monotonic()
    process = subprocess.Popen(argv, env=env, cwd=cwd, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"{argv} failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return {"seconds": round(seconds, 3), "stdout": stdout.decode()}


def _peak_rss_of(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of a command.

    Measured by GNU time, whose child is forked from a small process: a child forked straight
    from this (large) benchmark process would inherit its high-water RSS mark on Linux.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.monotonic()
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *argv], env=env, cwd=cwd, capture_output=True, text=True
        )
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"{argv} failed ({result.returncode}): {result.stderr[-2000:]}")
        peak_kib = int(report.read().strip().splitlines()[-1])
    return seconds, peak_kib, result.stdout


def seed(cluster: LocalPostgres, database: str, scale: float) -> dict[str, int]:
    from server import db_migrations

    cluster.create_database(database)
    asyncio.run(db_migrations.upgrade(cluster.dsn(database)))
    cluster.psql(
        sample_data_sql(users=int(20000 * scale), purchases=int(430000 * scale), audit_rows=int(200000 * scale)),
        database,
    )
    counts = cluster.psql("SELECT string_agg(relname || '=' || n_live_tup, ',') FROM pg_stat_user_tables", database)
    rows = {}
    for table in (item.split("=")[0] for item in counts.split(",")):
        rows[table] = int(cluster.psql(f'SELECT count(*) FROM "{table}"', database))
    return rows


def bench_scale(cluster: LocalPostgres, s3: LocalS3, workdir: Path, scale: float) -> dict:
    database = f"bench_{str(scale).replace('.', '_')}"
    seed_started = time.monotonic()
    rows = seed(cluster, database, scale)
    seed_seconds = time.monotonic() - seed_started
    db_bytes = int(cluster.psql(f"SELECT pg_database_size('{database}')"))
    pg_bin = cluster.bindir
    libpq = {
        **os.environ,
        "PGHOST": cluster.host,
        "PGPORT": str(cluster.port),
        "PGUSER": "postgres",
        "PGDATABASE": database,
    }

    reference = _timed([f"{pg_bin / 'pg_dump'} -Fc > /dev/null"], env=libpq, shell=True)["seconds"]
    reference_file = workdir / f"{database}.pgc"
    _timed([f"{pg_bin / 'pg_dump'} -Fc > {reference_file}"], env=libpq, shell=True)
    reference_size = reference_file.stat().st_size
    cluster.create_database(f"{database}_plain")
    reference_restore = _timed(
        [
            str(pg_bin / "pg_restore"),
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "-d",
            f"{database}_plain",
            str(reference_file),
        ],
        env=libpq,
    )["seconds"]
    cluster.drop_database(f"{database}_plain")
    reference_file.unlink()

    env = {key: value for key, value in os.environ.items() if not key.startswith(("S3_", "BACKUP_"))}
    env.update(s3.settings(BUCKET))
    env.update(
        {
            "DATABASE_URL": cluster.dsn(database),
            "PYTHONPATH": str(ROOT),
            "ENV_FILE": "",
            "BACKUP_PREFIX": f"{database}/",
            "PG_BINDIR": str(pg_bin),
        }
    )
    cli = [sys.executable, "-m", "deploy.ops.cli"]
    backup_seconds, backup_rss, out = _peak_rss_of(cli + ["backup"], env, workdir)
    backup_id = out.split()[1].rstrip(":")
    listing = json.loads(_peak_rss_of(cli + ["backups", "--json"], env, workdir)[2])
    manifest = next(m for m in listing["complete"] if m["backup_id"] == backup_id)
    idle_seconds, idle_rss, _ = _peak_rss_of(cli + ["backups"], env, workdir)  # CLI start-up baseline

    target = f"{database}_restored"
    restore_seconds, restore_rss, _ = _peak_rss_of(
        cli + ["restore", "--backup", backup_id, "--target", target], env, workdir
    )
    cluster.drop_database(target)
    verify_seconds, verify_rss, verify_out = _peak_rss_of(cli + ["verify-backup", "--backup", backup_id], env, workdir)
    mib = 1024 * 1024
    return {
        "scale": scale,
        "rows_total": sum(rows.values()),
        "rows": rows,
        "seed_seconds": round(seed_seconds, 1),
        "database_mib": round(db_bytes / mib, 1),
        "reference_pg_dump_Fc_devnull_seconds": round(reference, 2),
        "reference_pg_dump_Fc_mib": round(reference_size / mib, 1),
        "backup_seconds": round(backup_seconds, 2),
        "backup_pipeline_seconds": manifest["duration_seconds"],
        "backup_stored_mib": round(manifest["size_bytes"] / mib, 1),
        "backup_database_mib_per_s": round(db_bytes / mib / backup_seconds, 1),
        "reference_database_mib_per_s": round(db_bytes / mib / reference, 1),
        "backup_speed_vs_reference_percent": round(100 * reference / backup_seconds),
        "backup_peak_rss_mib": round(backup_rss / 1024, 1),
        "cli_startup_seconds": round(idle_seconds, 2),
        "cli_idle_peak_rss_mib": round(idle_rss / 1024, 1),
        "restore_seconds": round(restore_seconds, 2),
        "reference_pg_restore_single_transaction_seconds": round(reference_restore, 2),
        "restore_peak_rss_mib": round(restore_rss / 1024, 1),
        "verify_seconds": round(verify_seconds, 2),
        "verify_passed": "PASSED" in verify_out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="0.1,1", help="comma-separated sizes; 1 = about 1 million rows")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (cluster, logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cnb-backup-bench-"))
    os.chmod(workdir, 0o755)
    cluster = LocalPostgres(workdir / "pg")
    s3 = LocalS3(log_file=workdir / "moto.log")
    results = []
    try:
        cluster.start()
        s3.start()
        s3.create_bucket(BUCKET)
        for scale in (float(item) for item in args.scales.split(",")):
            result = bench_scale(cluster, s3, workdir, scale)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "rows"}), flush=True)
    finally:
        s3.stop()
        if args.keep:
            cluster.stop()
            print(f"kept {workdir}")
        else:
            cluster.destroy()
            shutil.rmtree(workdir, ignore_errors=True)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "backup_bench.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

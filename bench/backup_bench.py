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


def sample_data_sql(users: int, purchases: int, audit_rows: int) -> str:
    """Consistent sample rows in every table (wallets match their transactions and payouts).

    Deterministic ids (md5 of a label) so foreign keys always point at existing rows.
    """
    merchants = max(3, min(200, users // 10))
    return f"""
INSERT INTO users (id, email, hashed_password, role, active, created_at)
SELECT md5('u' || i)::uuid, 'user' || i || '@example.test', '$argon2id$v=19$m=65536,t=3,p=4$' || md5('pw' || i),
       CASE WHEN i = 1 OR i % 97 = 0 THEN 'admin' ELSE 'user' END, i % 53 <> 0,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '7 minutes'
FROM generate_series(1, {users}) AS i;

INSERT INTO merchants (id, name, default_cashback_percentage, active)
SELECT md5('m' || i)::uuid, 'Merchant ' || i, (i % 20) + 0.5, i % 11 <> 0 FROM generate_series(1, {merchants}) AS i;

INSERT INTO offers (id, merchant_id, percentage, fixed_amount, start_date, end_date, monthly_cap_per_user)
SELECT md5('o' || i)::uuid, md5('m' || i)::uuid, (i % 15) + 1.25, CASE WHEN i % 3 = 0 THEN 2.50 END,
       date '2026-01-01', date '2026-12-31', 150.00
FROM generate_series(1, {merchants}) AS i;

INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, status, cashback_amount,
                       verification_attempts, created_at, updated_at)
SELECT md5('p' || i)::uuid, 'ext-' || i, md5('u' || (1 + i % {users}))::uuid, md5('m' || (1 + i % {merchants}))::uuid,
       md5('o' || (1 + i % {merchants}))::uuid, round(10 + ((i * 37) % 50000) / 100.0, 2), 'EUR',
       (ARRAY['pending', 'confirmed', 'rejected', 'reversed'])[1 + i % 4],
       CASE WHEN i % 4 = 2 THEN 0 ELSE round((10 + ((i * 37) % 50000) / 100.0) * 0.05, 2) END,
       i % 5, timestamptz '2026-02-01 00:00:00+00' + i * interval '13 seconds',
       timestamptz '2026-02-01 00:00:00+00' + i * interval '13 seconds'
FROM generate_series(1, {purchases}) AS i;

INSERT INTO cashback_transactions (user_id, purchase_id, amount, status, created_at, updated_at)
SELECT user_id, id, cashback_amount,
       CASE status WHEN 'pending' THEN 'pending' WHEN 'confirmed' THEN 'available' ELSE 'reversed' END,
       created_at, updated_at
FROM purchases WHERE status <> 'rejected';

INSERT INTO payouts (user_id, amount, status, requested_at, processed_at, processed_by, external_reference)
SELECT user_id, round(available / 2, 2), CASE WHEN n % 2 = 0 THEN 'completed' ELSE 'requested' END,
       timestamptz '2026-06-01 00:00:00+00', CASE WHEN n % 2 = 0 THEN timestamptz '2026-06-02 00:00:00+00' END,
       CASE WHEN n % 2 = 0 THEN md5('u1')::uuid END, CASE WHEN n % 2 = 0 THEN 'bank-' || n END
FROM (SELECT user_id, sum(amount) AS available, row_number() OVER (ORDER BY user_id) AS n
      FROM cashback_transactions WHERE status = 'available' GROUP BY user_id HAVING sum(amount) >= 0.02) AS a
WHERE n % 3 = 0;

INSERT INTO wallets (user_id, pending_balance, available_balance, paid_balance)
SELECT u.id,
       coalesce((SELECT sum(amount) FROM cashback_transactions t WHERE t.user_id = u.id AND t.status = 'pending'), 0),
       coalesce((SELECT sum(amount) FROM cashback_transactions t WHERE t.user_id = u.id AND t.status = 'available'), 0)
         - coalesce((SELECT sum(amount) FROM payouts p WHERE p.user_id = u.id AND p.status <> 'failed'), 0),
       coalesce((SELECT sum(amount) FROM payouts p WHERE p.user_id = u.id AND p.status = 'completed'), 0)
FROM users u;

INSERT INTO audit_logs (occurred_at, actor_type, actor_id, action, resource_type, resource_id, outcome, details)
SELECT timestamptz '2026-03-01 00:00:00+00' + i * interval '11 seconds',
       CASE WHEN i % 3 = 0 THEN 'system' ELSE 'admin' END, CASE WHEN i % 3 = 0 THEN NULL ELSE md5('u1')::uuid END,
       'purchase.verify', 'purchase', md5('p' || (1 + i % {purchases}))::uuid,
       CASE WHEN i % 17 = 0 THEN 'failure' ELSE 'success' END,
       jsonb_build_object('attempt', i % 5, 'note', 'sample ' || i, 'amount', ((i * 7) % 1000) / 100.0)
FROM generate_series(1, {audit_rows}) AS i;

INSERT INTO feature_flags (key, enabled, scope_type, scope_id, description)
VALUES ('purchase_verification', true, 'global', NULL, 'sample'),
       ('payouts', false, 'merchant', md5('m1')::uuid, NULL),
       ('new_wallet_ui', true, 'user', md5('u1')::uuid, 'pilot');

INSERT INTO refresh_tokens (user_id, token_hash, issued_at, expires_at, used_at)
SELECT md5('u' || i)::uuid, encode(sha256(('token' || i)::bytea), 'hex'), timestamptz '2026-11-01 00:00:00+00',
       timestamptz '2026-12-01 00:00:00+00', CASE WHEN i % 2 = 0 THEN timestamptz '2026-11-02 00:00:00+00' END
FROM generate_series(1, greatest(1, {users} / 4)) AS i;

INSERT INTO login_attempts (email, attempted_at, ip)
SELECT 'user' || i || '@example.test', timestamptz '2026-11-20 00:00:00+00' + i * interval '1 second',
       CASE WHEN i % 4 = 0 THEN NULL ELSE ('10.0.' || (i % 250) || '.' || (1 + i % 250))::inet END
FROM generate_series(1, greatest(1, {users} / 2)) AS i;
ANALYZE;
"""


# -- the benchmark ---------------------------------------------------------------------------

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

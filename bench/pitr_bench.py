"""PITR benchmark: base backup and restore to a chosen second at a data size.

    .venv/bin/python bench/pitr_bench.py [--users 20000] [--purchases 200000] [--engine sealed|barman]

`--engine sealed` (the default) takes the scheduled base backup, ours (ADR 0045); `--engine barman`
takes barman-cloud-backup's, as hosts did before, which the same restore still lays down.

Starts moto and a throwaway primary that archives its WAL (encrypted, as in production) through
deploy/ops/pitr, migrates the real schema, fills it with bench/backup_bench.py's sample data, takes
a base backup with the host-side PITR CLI, rewrites half the purchases (WAL to replay), archives a
marker commit, then restores to the marker's second into a scratch server and compares row counts. Prints one JSON object.
Run as root (the clusters run as an unprivileged account, as on a host) with Debian's barman-cli-cloud.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backup_bench import sample_data_sql  # noqa: E402
from deploy.ops.pitr import barman, runner  # noqa: E402
from devtools.local_postgres import UNPRIVILEGED_USER, LocalPostgres, _demote_kwargs, free_port  # noqa: E402
from devtools.local_s3 import LocalS3  # noqa: E402
from server import db_migrations  # noqa: E402

BUCKET = "pitr-bench"
COUNTS_SQL = "SELECT (SELECT count(*) FROM purchases) || '/' || (SELECT count(*) FROM cashback_transactions)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--purchases", type=int, default=200000)
    parser.add_argument("--engine", choices=("sealed", "barman"), default="sealed")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clicknback-pitr-bench-"))
    root.chmod(0o711)
    owner = pwd.getpwnam(UNPRIVILEGED_USER)
    try:
        with LocalS3(log_file=root / "moto.log") as s3:
            print(json.dumps(run(root, owner, s3, args.users, args.purchases, args.engine), sort_keys=True))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, owner: pwd.struct_passwd, s3: LocalS3, users: int, purchases: int, engine: str) -> dict:
    s3.create_bucket(BUCKET)
    env = {**s3.settings(BUCKET), "PITR_PREFIX": "bench", "BACKUP_ENCRYPTION_KEY": "bench-key-" + "k" * 32}
    env_file = root / "pitr.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    os.chown(env_file, owner.pw_uid, owner.pw_gid)
    env_file.chmod(0o600)
    primary = LocalPostgres(root / "primary")
    primary.start()
    try:
        archive_command = barman.wal_command("/usr/bin/python3", str(ROOT), str(env_file), "push")
        for statement in barman.alter_system_sql(barman.archive_settings(archive_command)):
            primary.psql(statement)
        primary.stop()
        primary.start()
        primary.create_database("clicknback")
        asyncio.run(db_migrations.upgrade(primary.dsn("clicknback")))

        def cli(*cli_args: str) -> tuple[dict, float]:
            started = time.monotonic()
            result = subprocess.run(
                ["/usr/bin/python3", "-m", "deploy.ops.pitr.cli", "--env-file", str(env_file)]
                + ["--bindir", str(primary.bindir), *cli_args],
                env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
                cwd="/",
                capture_output=True,
                text=True,
                **_demote_kwargs(),
            )
            if result.returncode != 0:
                raise SystemExit(f"pitr {cli_args[0]} failed: {result.stderr.strip()}")
            return json.loads(result.stdout.strip().splitlines()[-1]), time.monotonic() - started

        started = time.monotonic()
        primary.psql(sample_data_sql(users=users, purchases=purchases, audit_rows=purchases // 10), "clicknback")
        load_s = time.monotonic() - started
        if engine == "sealed":
            backup, base_backup_s = cli("base-backup", "--host", primary.host, "--port", str(primary.port))
        else:
            started = time.monotonic()
            settings = barman.load_pitr_settings(env)
            runner.run_tool(
                settings, barman.base_backup_argv(settings, primary.host, primary.port, "postgres"), owner.pw_name
            )
            base_backup_s = time.monotonic() - started
            backup = {"engine": "barman"}
        # The largest finished child so far (the PITR CLI or barman's, with what they ran): memory of
        # a streamed backup stays flat while the database grows.
        backup_max_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
        primary.psql(
            f"UPDATE purchases SET updated_at = now() WHERE ctid IN (SELECT ctid FROM purchases LIMIT {purchases // 2})",
            "clicknback",
        )
        # The restore's target: the second of a marker commit archived after the rewrite, as
        # `restore --to-time` and verify-backup --pitr pick one.
        closed, drain_s = cli("close-segment", "--host", primary.host, "--port", str(primary.port), "--timeout", "1800")
        scratch = root / "scratch"
        scratch.mkdir()
        os.chown(scratch, owner.pw_uid, owner.pw_gid)
        port = free_port()
        restore, restore_s = cli(
            "restore", "--to-time", closed["marked_at"], "--data-dir", str(scratch / "data"), "--port", str(port)
        )
        copy = LocalPostgres(scratch, port=port)
        try:
            counts_match = copy.psql(COUNTS_SQL, "clicknback") == primary.psql(COUNTS_SQL, "clicknback")
        finally:
            copy.destroy()
        return {
            "engine": engine,
            "base_backup": backup,
            "users": users,
            "purchases": purchases,
            "database_bytes": int(primary.psql("SELECT pg_database_size('clicknback')")),
            "load_s": round(load_s, 1),
            "base_backup_s": round(base_backup_s, 1),
            "base_backup_max_rss_mib": backup_max_rss_mib,
            "segments_archived": int(primary.psql("SELECT archived_count FROM pg_stat_archiver")),
            "archive_drain_after_switch_s": round(drain_s, 1),
            "restore": restore,
            "restore_wall_s": round(restore_s, 1),
            "counts_match": counts_match,
            "loadavg": os.getloadavg(),
        }
    finally:
        primary.destroy()


if __name__ == "__main__":
    main()

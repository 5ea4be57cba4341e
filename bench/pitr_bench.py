"""PITR benchmark: base backup and restore to a chosen second at a data size.

    .venv/bin/python bench/pitr_bench.py [--users 20000] [--purchases 200000]
    .venv/bin/python bench/pitr_bench.py --from-pg-dir .local/bench-data/<key>/pg [--rewrite 100000]
    add --engine barman for barman-cloud-backup's base backup (default: sealed, ours: ADR 0045)
    add --s3-endpoint URL (keys in S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY) for a disk-backed endpoint:
    moto holds every object in memory, and the 10M database's base backup outgrows this machine's RAM

Starts moto and a throwaway primary that archives its WAL (encrypted, as in production) through
deploy/ops/pitr: either migrated and filled with bench/backup_bench.py's sample data, or a copy of a
stopped cluster folder such as bench/data_size.py's cache of the large database (given by path:
the cache's own helpers delete folders of other keys). Takes a base backup with the host-side PITR
CLI, rewrites purchases (WAL to replay), archives a marker commit (the chosen second), writes once
more after it, then restores to that second into a scratch server and checks there every table's
row count as of that second, that the later write is absent, and the wallet invariants
(check-wallets). Prints one JSON object with each phase's seconds.
Run as root (the clusters run as an unprivileged account, as on a host) with Debian's barman-cli-cloud
(its WAL archiving, and the base backup with --engine barman).
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

import boto3
import botocore.exceptions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.backup_bench import sample_data_sql  # noqa: E402
from deploy.ops.backup.verify import run_check_wallets  # noqa: E402
from deploy.ops.pitr import barman, runner  # noqa: E402
from deploy.ops.stats import row_counts  # noqa: E402
from devtools.local_postgres import UNPRIVILEGED_USER, LocalPostgres, _demote_kwargs, free_port  # noqa: E402
from devtools.local_s3 import REGION, LocalS3  # noqa: E402
from server import db_migrations  # noqa: E402

BUCKET = "pitr-bench"
# Written once before and once after the chosen second: the copy must hold the first row only.
MARKS = "pitr_bench_marks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--purchases", type=int, default=200000)
    parser.add_argument("--from-pg-dir", type=Path, help="copy this stopped cluster folder instead of generating")
    parser.add_argument("--database", help="its database (default: clicknback; with --from-pg-dir: bench)")
    parser.add_argument("--rewrite", type=int, help="purchases updated after the base backup (default: half)")
    parser.add_argument("--engine", choices=("sealed", "barman"), default="sealed")
    parser.add_argument("--s3-endpoint", help="an S3-compatible endpoint already running (default: start moto)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clicknback-pitr-bench-"))
    root.chmod(0o711)
    owner = pwd.getpwnam(UNPRIVILEGED_USER)
    try:
        if args.s3_endpoint:
            print(json.dumps(run(root, owner, RunningS3(args.s3_endpoint), args), sort_keys=True))
        else:
            with LocalS3(log_file=root / "moto.log") as s3:
                print(json.dumps(run(root, owner, s3, args), sort_keys=True))
    finally:
        for folder in (root / "primary", root / "scratch"):  # a cluster left running must not hold the files
            if (folder / "data" / "postmaster.pid").exists():
                LocalPostgres(folder).stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


class RunningS3:
    """An S3-compatible endpoint started by the operator, as LocalS3's two calls here need it."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url

    def settings(self, bucket: str) -> dict[str, str]:
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_BUCKET": bucket,
            "S3_REGION": os.environ.get("S3_REGION", REGION),
            "S3_ACCESS_KEY_ID": os.environ["S3_ACCESS_KEY_ID"],
            "S3_SECRET_ACCESS_KEY": os.environ["S3_SECRET_ACCESS_KEY"],
        }

    def create_bucket(self, name: str) -> None:
        settings = self.settings(name)
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=settings["S3_REGION"],
            aws_access_key_id=settings["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=settings["S3_SECRET_ACCESS_KEY"],
        )
        try:
            client.head_bucket(Bucket=name)
        except botocore.exceptions.ClientError:
            client.create_bucket(Bucket=name)


def copy_cluster(source: Path, target: Path) -> float:
    """A copy of a stopped cluster folder (data/, run/), its remembered port dropped; seconds taken."""
    if (source / "data" / "postmaster.pid").exists():
        raise SystemExit(f"{source} holds a running cluster: copy a stopped one")
    started = time.monotonic()
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(target)], check=True)
    (target / "port").unlink(missing_ok=True)
    return time.monotonic() - started


class Phases(dict[str, float]):
    """Each phase's seconds, also said on stderr as it ends: a long run cut short still tells them."""

    def __setitem__(self, name: str, seconds: float) -> None:
        super().__setitem__(name, seconds)
        print(f"pitr-bench {time.strftime('%H:%M:%S')} {name} {seconds:.1f}", file=sys.stderr, flush=True)


def run(root: Path, owner: pwd.struct_passwd, s3: LocalS3 | RunningS3, args: argparse.Namespace) -> dict:
    s3.create_bucket(BUCKET)
    env = {**s3.settings(BUCKET), "PITR_PREFIX": "bench", "BACKUP_ENCRYPTION_KEY": "bench-key-" + "k" * 32}
    env_file = root / "pitr.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    os.chown(env_file, owner.pw_uid, owner.pw_gid)
    env_file.chmod(0o600)
    phases = Phases()
    database = args.database or ("bench" if args.from_pg_dir else "clicknback")
    if args.from_pg_dir:
        phases["copy_s"] = copy_cluster(args.from_pg_dir.resolve(), root / "primary")
    primary = LocalPostgres(root / "primary", port=free_port())
    primary.start()
    try:
        started = time.monotonic()
        archive_command = barman.wal_command("/usr/bin/python3", str(ROOT), str(env_file), "push")
        for statement in barman.alter_system_sql(barman.archive_settings(archive_command)):
            primary.psql(statement)
        primary.stop()
        primary.start()
        phases["archiving_on_s"] = time.monotonic() - started
        if not args.from_pg_dir:
            primary.create_database(database)
            asyncio.run(db_migrations.upgrade(primary.dsn(database)))
            started = time.monotonic()
            purchases = args.purchases
            primary.psql(sample_data_sql(users=args.users, purchases=purchases, audit_rows=purchases // 10), database)
            phases["load_s"] = time.monotonic() - started
        else:
            purchases = int(primary.psql("SELECT count(*) FROM purchases", database))
        primary.psql(f"CREATE TABLE {MARKS} (n int PRIMARY KEY)", database)

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

        where = ("--host", primary.host, "--port", str(primary.port))
        if args.engine == "sealed":
            backup, phases["base_backup_s"] = cli("base-backup", *where)
        else:
            started = time.monotonic()
            settings = barman.load_pitr_settings(env)
            runner.run_tool(
                settings, barman.base_backup_argv(settings, primary.host, primary.port, "postgres"), owner.pw_name
            )
            phases["base_backup_s"] = time.monotonic() - started
            backup = {"engine": "barman"}
        # The largest finished child so far (the PITR CLI or barman's, with what they ran): memory of
        # a streamed backup stays flat while the database grows.
        backup_max_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
        rewrite = purchases // 2 if args.rewrite is None else args.rewrite
        started = time.monotonic()
        primary.psql(
            f"UPDATE purchases SET updated_at = now() WHERE ctid IN (SELECT ctid FROM purchases LIMIT {rewrite})",
            database,
        )
        primary.psql(f"INSERT INTO {MARKS} VALUES (1)", database)
        phases["rewrite_s"] = time.monotonic() - started
        expected = asyncio.run(row_counts(primary.dsn(database)))
        # The restore's target: the second of a marker commit archived after the rewrite, as
        # `restore --to-time` and verify-backup --pitr pick one; a write after it must not come back.
        closed, phases["archive_drain_s"] = cli("close-segment", *where, "--timeout", "1800")
        primary.psql(f"INSERT INTO {MARKS} VALUES (2)", database)
        cli("close-segment", *where, "--timeout", "1800")
        database_bytes = int(primary.psql(f"SELECT pg_database_size('{database}')"))
        segments = int(primary.psql("SELECT archived_count FROM pg_stat_archiver"))
        # Lost, as before a real restore: the restore and its checks alone on the machine, and the
        # disk holds one copy of a large database at a time.
        primary.destroy()
        scratch = root / "scratch"
        scratch.mkdir()
        os.chown(scratch, owner.pw_uid, owner.pw_gid)
        port = free_port()
        restore, phases["restore_s"] = cli(
            "restore", "--to-time", closed["marked_at"], "--data-dir", str(scratch / "data"), "--port", str(port)
        )
        copy = LocalPostgres(scratch, port=port)
        try:
            started = time.monotonic()
            found = asyncio.run(row_counts(copy.dsn(database)))
            marks = copy.psql(f"SELECT string_agg(n::text, ',' ORDER BY n) FROM {MARKS}", database)
            wallets = run_check_wallets(copy.dsn(database))
            phases["checks_s"] = time.monotonic() - started
        finally:
            copy.destroy()
        return {
            "source": str(args.from_pg_dir or "generated"),
            "engine": args.engine,
            "base_backup": backup,
            "base_backup_max_rss_mib": backup_max_rss_mib,
            "purchases": purchases,
            "rewritten": rewrite,
            "database_bytes": database_bytes,
            "phases_s": {name: round(seconds, 1) for name, seconds in phases.items()},
            "segments_archived": segments,
            "target": closed["marked_at"],
            "restore": restore,
            "counts_match": found == expected,
            "counts": found,
            "later_write_absent": marks == "1",
            "wallets_ok": wallets.ok,
            "wallets": wallets.detail,
            "loadavg": os.getloadavg(),
        }
    finally:
        primary.destroy()


if __name__ == "__main__":
    main()

"""Failures, each with nothing lost and a clear message: dump killed mid-way, upload cut, corrupted
object, unreachable bucket, bad configuration, writes during the backup."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from deploy.ops.backup import operations
from deploy.ops.backup.settings import load_backup_settings
from devtools.local_postgres import free_port
from server.db import parse_database_url
from tests.support.waiting import wait_for

from .conftest import Ops, scratch_databases
from .fault_proxy import FaultProxy
from .test_backup_cli import backup_id_from


def child_named(parent_pid: int, name: str) -> int | None:
    """pid of a descendant process called `name` (the CLI's pg_dump)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append((int(entry.name), comm))
    pending = [parent_pid]
    while pending:
        for pid, comm in children.get(pending.pop(), []):
            if comm == name:
                return pid
            pending.append(pid)
    return None


def bucket_keys(local_s3, bucket: str) -> list[str]:
    return sorted(obj["Key"] for obj in local_s3.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def unfinished_uploads(local_s3, bucket: str) -> list:
    return local_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.fixture
def proxy(local_s3):
    fault_proxy = FaultProxy(local_s3.host, local_s3.port)
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def bulky_source(ops: Ops, source_db: str) -> str:
    """~6 MB of incompressible rows, so the dump is still running when the upload stalls. 1 KiB of
    random bytes a row from core functions (64 random md5 digests; no pgcrypto in the schema)."""
    ops.cluster.psql(
        "CREATE TABLE filler (id int PRIMARY KEY, payload bytea NOT NULL); "
        "INSERT INTO filler SELECT i, (SELECT decode(string_agg(md5(random()::text || i || j), ''), 'hex') "
        "FROM generate_series(1, 64) AS j) FROM generate_series(1, 6000) AS i",
        source_db,
    )
    return source_db


def test_dump_killed_mid_way_stores_no_backup_and_the_next_one_succeeds(
    ops: Ops, bulky_source, proxy, local_s3, bucket
):
    proxy.stall_after(200_000)
    env = {**ops.env, "S3_ENDPOINT_URL": proxy.endpoint_url}
    cli = subprocess.Popen(
        [sys.executable, "-m", "deploy.ops.cli", "backup"],
        cwd=ops.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(proxy.tripped.is_set, 60, "the upload to stall")
        pg_dump = wait_for(lambda: child_named(cli.pid, "pg_dump"), 10, "pg_dump to be running")
        os.kill(pg_dump, signal.SIGKILL)  # a real failure, half-way through the dump
        proxy.resume()
        stdout, stderr = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 1, stdout + stderr
    assert "dump failed: pg_dump killed by signal SIGKILL; no backup was stored" in stderr
    assert "partial upload was discarded" in stderr
    assert bucket_keys(local_s3, bucket) == [] and unfinished_uploads(local_s3, bucket) == []
    assert ops.listing() == {"complete": [], "incomplete": [], "incomplete_reasons": {}}

    ops.ok("backup", S3_ENDPOINT_URL=proxy.endpoint_url)
    assert len(ops.listing()["complete"]) == 1


def test_upload_cut_mid_way_leaves_no_manifest_and_the_next_backup_succeeds(
    ops: Ops, bulky_source, proxy, local_s3, bucket
):
    proxy.sever_after(300_000)
    started = time.monotonic()
    failed = ops.run("backup", S3_ENDPOINT_URL=proxy.endpoint_url)
    assert time.monotonic() - started < 90
    assert failed.returncode == 1
    assert "upload failed: cannot upload part" in failed.stderr and "no backup was stored" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert not any(key.endswith("manifest.json") for key in bucket_keys(local_s3, bucket))
    assert bucket_keys(local_s3, bucket) == []  # parts of an unfinished multipart upload are invisible
    leftovers = unfinished_uploads(local_s3, bucket)
    assert len(leftovers) == (0 if "partial upload was discarded" in failed.stderr else 1)

    proxy.resume()
    backup_id = backup_id_from(ops.ok("backup", S3_ENDPOINT_URL=proxy.endpoint_url).stdout)
    listing = ops.listing()
    assert [m["backup_id"] for m in listing["complete"]] == [backup_id] and listing["incomplete"] == []
    ops.ok("verify-backup")


def test_corrupted_object_is_refused_by_restore_and_verify(ops: Ops, local_s3, bucket, monkeypatch):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    manifest = ops.listing()["complete"][0]
    client = local_s3.client()
    data = bytearray(client.get_object(Bucket=bucket, Key=manifest["data_key"])["Body"].read())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    client.put_object(Bucket=bucket, Key=manifest["data_key"], Body=bytes(data))

    restore = ops.run("restore", "--backup", backup_id, "--target", "bk_from_corrupt")
    assert restore.returncode == 1
    assert f"checksum mismatch for backup {backup_id}" in restore.stderr and "refusing to use it" in restore.stderr
    assert ops.cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'bk_from_corrupt'") == "0"

    verify = ops.run("verify-backup")
    assert verify.returncode == 1
    assert "FAIL checksum: checksum mismatch" in verify.stdout and f"backup {backup_id} FAILED" in verify.stdout
    assert scratch_databases(ops.cluster) == []
    assert ops.listing()["complete"][0]["verification"]["ok"] is False
    assert ops.ok("backups").stdout.splitlines()[1].split()[-3] == "FAILED"

    # A truncated object no longer matches the manifest's size: not even listed as usable.
    client.put_object(Bucket=bucket, Key=manifest["data_key"], Body=bytes(data[:1000]))
    listing = ops.listing()
    mismatch = f"size mismatch: {manifest['data_key'].rsplit('/', 1)[-1]} is 1000 bytes, its manifest records"
    assert listing["incomplete"] == [backup_id] and listing["incomplete_reasons"][backup_id].startswith(mismatch)
    assert f"  {backup_id}: {mismatch}" in ops.ok("backups").stdout  # what it is, not "no usable manifest"
    truncated = ops.run("restore", "--backup", backup_id, "--target", "bk_from_corrupt")
    assert truncated.returncode == 1 and "is incomplete (size mismatch: " in truncated.stderr

    # Two days on, retention deletes it, saying what it deletes and why (here in-process: the
    # clock is the one thing moved; the store is the same moto endpoint).
    settings = load_backup_settings(ops.env)
    later = operations.now_utc() + timedelta(days=2)
    monkeypatch.setattr(operations, "now_utc", lambda: later)
    out = io.StringIO()
    operations.prune_backups(settings, operations.make_store(settings), out, dry_run=False)
    assert f"  deleting {backup_id} (incomplete: {mismatch}" in out.getvalue(), out.getvalue()
    assert "; last written 20" in out.getvalue() and ops.listing()["incomplete"] == []


def test_unreachable_endpoint_and_missing_bucket_fail_fast_with_one_clear_line(ops: Ops):
    dead = f"http://127.0.0.1:{free_port()}"
    for command in (["backup"], ["backups"], ["verify-backup"], ["prune-backups"]):
        started = time.monotonic()
        result = ops.run(*command, S3_ENDPOINT_URL=dead)
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1
        assert "S3 endpoint unreachable" in result.stderr and dead in result.stderr
        assert time.monotonic() - started < 30
    missing = ops.run("backup", S3_BUCKET="no-such-bucket-here")
    assert missing.returncode == 1 and "the bucket does not exist" in missing.stderr
    assert "'no-such-bucket-here'" in missing.stderr


def test_bad_configuration_names_the_variable_and_exits_2(ops: Ops):
    for variable in ("DATABASE_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
        result = ops.run("backup", **{variable: ""})
        assert result.returncode == 2
        assert result.stderr == f"configuration error: {variable}: is required for backups\n"
    short_key = ops.run("backup", BACKUP_ENCRYPTION_KEY="short-key")
    assert short_key.returncode == 2 and short_key.stderr.startswith("configuration error: BACKUP_ENCRYPTION_KEY:")
    assert "short-key" not in short_key.stderr
    gone = ops.run("backup", DATABASE_URL=ops.url("no_such_database"))
    assert gone.returncode == 1 and "no_such_database" in gone.stderr and gone.stderr.count("\n") == 1


def test_writes_during_the_backup_do_not_break_its_consistency(ops: Ops, bulky_source: str):
    """Row counts come from the dump's own snapshot, so a busy database still verifies."""
    stop = threading.Event()
    inserted = []

    def writer() -> None:
        async def write() -> None:
            connection = await asyncpg.connect(**parse_database_url(ops.url(bulky_source)))
            try:
                for number in range(5000):  # bounded: at most 5000 rows or until the backup ends
                    if stop.is_set():
                        break
                    await connection.execute("INSERT INTO login_attempts (email) VALUES ($1)", f"w{number}@x.test")
                    inserted.append(number)
            finally:
                await connection.close()

        asyncio.run(write())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: len(inserted) > 10, 30, "the writer to start")
        ops.ok("backup")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert len(inserted) > 10
    result = ops.ok("verify-backup")
    assert "ok   row counts" in result.stdout


def test_a_second_concurrent_backup_is_refused_with_status_3(ops: Ops, source_db: str):
    """Two hosts' cron (or cron and an operator) never dump the same database at once."""
    from deploy.ops.backup.db import BACKUP_LOCK_KEY

    holder = subprocess.Popen(
        [
            str(ops.cluster.bindir / "psql"),
            "-X",
            "-q",
            "-h",
            ops.cluster.host,
            "-p",
            str(ops.cluster.port),
            "-U",
            "postgres",
            "-d",
            source_db,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        holder.stdin.write(f"SELECT pg_advisory_lock({BACKUP_LOCK_KEY});\n")
        holder.stdin.flush()
        wait_for(
            lambda: (
                ops.cluster.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted", source_db)
                == "1"
            ),
            30,
            "the lock to be held",
        )
        busy = ops.run("backup")
        assert busy.returncode == 3 and "another backup of database" in busy.stderr
        assert ops.listing() == {"complete": [], "incomplete": [], "incomplete_reasons": {}}
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    ops.ok("backup")  # the lock went with its session

"""The host-side PITR CLI as a host runs it: system python3, PostgreSQL's account, moto over HTTP.

Restores the app's real schema with consistent sample data into a scratch server and checks the
wallet invariants on the copy with the ops CLI, as `verify-backup --pitr` does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys

from bench.backup_bench import sample_data_sql
from devtools.local_postgres import LocalPostgres, _demote_kwargs, free_port, give_to_cluster_user
from server import db_migrations

from .conftest import ROOT, SYSTEM_PYTHON, Archive

SECRETS = ("local-secret-key", "pitr-key-0123456789-never-printed-abcdef")


def pitr_cli(archive: Archive, *args: str, timeout: float = 600) -> dict:
    result = subprocess.run(
        [SYSTEM_PYTHON, "-m", "deploy.ops.pitr.cli", "--env-file", str(archive.env_file)]
        + ["--bindir", str(archive.primary.bindir), *args],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
        **_demote_kwargs(),
    )
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    assert result.returncode == 0, f"pitr {args} failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_restored(primary_url: str, port: int) -> subprocess.CompletedProcess:
    """The ops CLI with the live DATABASE_URL, pointed at the scratch copy's port (as verify-backup --pitr)."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", "check-restored", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "ENV_FILE": "/dev/null", "DATABASE_URL": primary_url},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_restore_to_latest_into_a_scratch_server_keeps_every_row_and_the_wallet_invariants(archive: Archive) -> None:
    primary = archive.primary
    primary.create_database("clicknback")
    asyncio.run(db_migrations.upgrade(primary.dsn("clicknback")))
    backup = pitr_cli(archive, "base-backup", "--host", primary.host, "--port", str(primary.port))
    assert backup["backups"] == 1
    primary.psql(sample_data_sql(users=300, purchases=3000, audit_rows=500), database="clicknback")
    counts_sql = "SELECT (SELECT count(*) FROM purchases) || '/' || (SELECT count(*) FROM cashback_transactions) || '/' || (SELECT sum(available_balance) FROM wallets)"
    expected = primary.psql(counts_sql, database="clicknback")
    archive.wait_archived()

    scratch = archive.root / "scratch"
    scratch.mkdir()
    os.chown(scratch, *_owner(primary)) if os.geteuid() == 0 else None
    port = free_port()
    restored = pitr_cli(archive, "restore", "--to-latest", "--data-dir", str(scratch / "data"), "--port", str(port))
    assert restored["target"] == "latest" and restored["port"] == port
    copy = LocalPostgres(scratch, port=port)
    try:
        assert copy.psql(counts_sql, database="clicknback") == expected
        checked = check_restored(primary.dsn("clicknback"), port)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        report = json.loads(checked.stdout)
        assert (
            report["wallet_mismatches"] == []
            and report["cap_total_mismatches"] == []
            and report["purchase_count_mismatches"] == []
        )
        assert report["row_counts"]["purchases"] == int(expected.split("/")[0])
        assert pitr_cli(archive, "discard", "--data-dir", str(scratch / "data")) == {"discarded": str(scratch / "data")}
        assert not (scratch / "data").exists()
    finally:
        copy.destroy()


def test_discard_refuses_a_folder_it_did_not_restore(archive: Archive) -> None:
    result = subprocess.run(
        [SYSTEM_PYTHON, "-m", "deploy.ops.pitr.cli", "--env-file", str(archive.env_file), "discard"]
        + ["--data-dir", str(archive.primary.data_dir)],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        **_demote_kwargs(),
    )
    assert result.returncode == 1 and "not a scratch restore" in result.stderr
    assert (archive.primary.data_dir / "PG_VERSION").exists()


def _owner(cluster: LocalPostgres) -> tuple[int, int]:
    stat = cluster.data_dir.stat()
    return stat.st_uid, stat.st_gid


def test_close_segment_makes_an_idle_databases_last_second_reachable(archive: Archive) -> None:
    """With no commit after the target in the archive PostgreSQL refuses the restore; the marker
    commit and the archived switch make the second the command reports a valid target."""
    primary = archive.primary
    pitr_cli(archive, "base-backup", "--host", primary.host, "--port", str(primary.port))
    primary.psql("CREATE TABLE marks (name text)")
    primary.psql("INSERT INTO marks VALUES ('kept')")
    closed = pitr_cli(archive, "close-segment", "--host", primary.host, "--port", str(primary.port))
    archived = primary.psql("SELECT last_archived_wal FROM pg_stat_archiver")
    assert archived[8:] >= closed["segment"][8:]
    scratch = archive.root / "restored"
    scratch.mkdir()
    give_to_cluster_user(scratch)
    data_dir = scratch / "data"
    port = free_port()
    restored = pitr_cli(
        archive, "restore", "--to-time", closed["marked_at"], "--data-dir", str(data_dir), "--port", str(port)
    )
    try:
        assert LocalPostgres(scratch, port=port).psql("SELECT string_agg(name, ',') FROM marks") == "kept"
    finally:
        pitr_cli(archive, "discard", "--data-dir", restored["data_dir"])


def _restore_fails(archive: Archive, name: str) -> str:
    scratch = archive.root / name
    scratch.mkdir()
    give_to_cluster_user(scratch)
    result = subprocess.run(
        [SYSTEM_PYTHON, "-m", "deploy.ops.pitr.cli", "--env-file", str(archive.env_file)]
        + ["--bindir", str(archive.primary.bindir), "restore", "--to-latest"]
        + ["--data-dir", str(scratch / "data"), "--port", str(free_port())],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=600,
        **_demote_kwargs(),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (scratch / "data").exists(), "a damaged base backup was laid down"
    assert not [path.name for path in scratch.iterdir()], "the download spool was left behind"
    return result.stderr


def _sealed_object(archive: Archive, archive_s3) -> tuple[str, bytearray]:
    client = archive_s3.client()
    listed = client.list_objects_v2(Bucket=archive.settings.bucket, Prefix=f"{archive.settings.prefix}/")
    key = next(item["Key"] for item in listed["Contents"] if item["Key"].endswith("/base.tar.gz.enc"))
    return key, bytearray(client.get_object(Bucket=archive.settings.bucket, Key=key)["Body"].read())


def test_a_damaged_base_backup_fails_the_restore_instead_of_starting(archive: Archive, archive_s3) -> None:
    """One flipped byte in the stored object: its sha256 no longer matches the manifest, and the
    restore stops before a file is written (ADR 0045)."""
    primary = archive.primary
    pitr_cli(archive, "base-backup", "--host", primary.host, "--port", str(primary.port))
    key, body = _sealed_object(archive, archive_s3)
    body[len(body) // 2] ^= 0xFF
    archive_s3.client().put_object(Bucket=archive.settings.bucket, Key=key, Body=bytes(body))
    stderr = _restore_fails(archive, "damaged")
    assert "pitr restore: PitrRunError: base backup " in stderr and "is damaged" in stderr and "sha256" in stderr


def test_a_tampered_base_backup_with_a_matching_manifest_fails_on_its_gcm_tag(archive: Archive, archive_s3) -> None:
    """Someone who can write the bucket rewrites the object and its manifest's sha256 and size: the
    AES-GCM tags, checked over the whole object before anything is laid down, still refuse it."""
    primary = archive.primary
    pitr_cli(archive, "base-backup", "--host", primary.host, "--port", str(primary.port))
    key, body = _sealed_object(archive, archive_s3)
    body[len(body) // 2] ^= 0xFF
    client = archive_s3.client()
    client.put_object(Bucket=archive.settings.bucket, Key=key, Body=bytes(body))
    manifest_key = key.rsplit("/", 1)[0] + "/manifest.json"
    manifest = json.loads(client.get_object(Bucket=archive.settings.bucket, Key=manifest_key)["Body"].read())
    manifest["sha256"], manifest["size_bytes"] = hashlib.sha256(body).hexdigest(), len(body)
    client.put_object(Bucket=archive.settings.bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    stderr = _restore_fails(archive, "tampered")
    assert "is damaged" in stderr and "failed authentication" in stderr, stderr

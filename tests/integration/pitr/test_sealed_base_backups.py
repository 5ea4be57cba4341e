"""Sealed base backups against a real cluster and moto over HTTP: what lands in the bucket, retention
of base backups and WAL, and barman's older backups on a host upgraded mid-retention (ADR 0045)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from deploy.ops.backup.crypto import MAGIC
from deploy.ops.pitr import barman, basebackup, runner, sealed
from devtools.local_postgres import _demote_kwargs

from .conftest import ENCRYPTION_KEY, ROOT, SYSTEM_PYTHON, Archive, cluster_os_user
from .test_pitr_restore import start_restored


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def take(archive: Archive) -> sealed.BaseManifest:
    primary = archive.primary
    return runner.take_base_backup(
        archive.settings, primary.host, primary.port, "postgres", cluster_os_user(), str(primary.bindir)
    )


def test_a_base_backup_is_sealed_in_the_bucket_and_its_manifest_names_its_wal(archive: Archive, archive_s3) -> None:
    primary = archive.primary
    primary.psql("CREATE TABLE secrets (note text); INSERT INTO secrets VALUES ('plaintext-marker-77')")
    manifest = take(archive)
    client = archive_s3.client()
    body = client.get_object(Bucket=archive.settings.bucket, Key=manifest.data_key)["Body"].read()
    assert body.startswith(MAGIC) and b"plaintext-marker-77" not in body and b"PG_VERSION" not in body
    stored = json.loads(
        client.get_object(
            Bucket=archive.settings.bucket, Key=sealed.manifest_key(archive.settings, manifest.backup_id)
        )["Body"].read()
    )
    assert ENCRYPTION_KEY not in json.dumps(stored)
    assert stored["size_bytes"] == len(body) and stored["encryption"]["algorithm"] == "AES-256-GCM-CHUNKED-v1"
    # The first segment the backup needs is the one the server was writing when the backup started.
    assert stored["timeline"] == 1 and stored["begin_wal"][:8] == "00000001"
    assert lsn(stored["begin_lsn"]) < lsn(stored["end_lsn"]) <= lsn(primary.psql("SELECT pg_current_wal_lsn()"))
    listed = runner.list_backups(archive.settings, cluster_os_user())
    assert [(entry["backup_id"], entry["kind"]) for entry in listed] == [(manifest.backup_id, "sealed")]


def wal_names(archive: Archive, archive_s3) -> list[str]:
    listed = archive_s3.client().list_objects_v2(
        Bucket=archive.settings.bucket, Prefix=sealed.wals_prefix(archive.settings)
    )
    return sorted(item["Key"].rsplit("/", 1)[-1] for item in listed.get("Contents", []))


def test_after_retention_the_oldest_kept_backup_still_restores_to_its_earliest_point(
    archive: Archive, archive_s3
) -> None:
    primary = archive.primary
    primary.psql("CREATE TABLE ledger (note text PRIMARY KEY)")
    taken = []
    for note in ("after-first", "after-second", "after-third"):
        taken.append(take(archive))
        primary.psql(f"INSERT INTO ledger VALUES ('{note}')")
        archive.wait_archived()
    before = wal_names(archive, archive_s3)
    kept_two = dataclasses.replace(archive.settings, redundancy=2)

    report = runner.apply_retention(kept_two, cluster_os_user())

    oldest_kept = taken[1]
    assert report == {
        "kept": 2,
        "deleted_backups": 1,
        "deleted_wal": report["deleted_wal"],
        "wal_cut": oldest_kept.begin_wal,
    }
    assert [m.backup_id for m in basebackup.manifests(archive.settings)] == [taken[1].backup_id, taken[2].backup_id]
    after = wal_names(archive, archive_s3)
    segments = [name for name in after if sealed.WAL_NAME.match(name)]
    assert min(name[:24] for name in segments) == oldest_kept.begin_wal
    assert report["deleted_wal"] == len(before) - len(after) > 0
    assert not [
        key
        for key in archive_s3.client()
        .list_objects_v2(
            Bucket=archive.settings.bucket, Prefix=f"{sealed.sealed_prefix(archive.settings)}{taken[0].backup_id}/"
        )
        .get("Contents", [])
    ]

    earliest = datetime.fromisoformat(oldest_kept.end_time)
    copy = start_restored(archive, "oldest-kept", earliest)
    try:
        assert copy.psql("SELECT string_agg(note, ',' ORDER BY note) FROM ledger") == "after-first"
    finally:
        copy.destroy()


def test_barmans_older_backup_stays_restorable_until_retention_removes_it(archive: Archive, archive_s3) -> None:
    """A host upgraded mid-retention: its barman backup is listed, chosen and restored through
    barman-cloud-restore; once enough sealed ones are newer, retention deletes it and its WAL."""
    primary = archive.primary
    primary.psql("CREATE TABLE ledger (note text PRIMARY KEY)")
    runner.run_tool(
        archive.settings,
        barman.base_backup_argv(archive.settings, primary.host, primary.port, "postgres"),
        cluster_os_user(),
    )
    primary.psql("INSERT INTO ledger VALUES ('after-barman')")
    archive.wait_archived()
    [legacy] = runner.list_backups(archive.settings, cluster_os_user())
    assert legacy["kind"] == "barman"

    copy = start_restored(archive, "from-barman", None)
    try:
        assert copy.psql("SELECT string_agg(note, ',') FROM ledger") == "after-barman"
    finally:
        copy.destroy()

    ours = take(archive)
    primary.psql("INSERT INTO ledger VALUES ('after-sealed')")
    archive.wait_archived()
    kinds = sorted(entry["kind"] for entry in runner.list_backups(archive.settings, cluster_os_user()))
    assert kinds == ["barman", "sealed"]
    report = runner.apply_retention(dataclasses.replace(archive.settings, redundancy=1), cluster_os_user())
    assert report["deleted_backups"] == 1 and report["wal_cut"] == ours.begin_wal
    assert (
        not archive_s3.client()
        .list_objects_v2(Bucket=archive.settings.bucket, Prefix=sealed.barman_base_prefix(archive.settings))
        .get("Contents")
    )
    assert [entry["kind"] for entry in runner.list_backups(archive.settings, cluster_os_user())] == ["sealed"]

    copy = start_restored(archive, "from-sealed", None)
    try:
        assert copy.psql("SELECT string_agg(note, ',' ORDER BY note) FROM ledger") == "after-barman,after-sealed"
    finally:
        copy.destroy()


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL])
def test_a_base_backup_interrupted_mid_upload_leaves_no_backup_and_the_next_one_works(
    archive: Archive, archive_s3, signal_number: int
) -> None:
    """An operator's Ctrl-C aborts the upload at once; a SIGKILL leaves an unfinished upload without a
    manifest, which no listing or restore ever sees and retention aborts after its grace."""
    primary = archive.primary
    primary.psql(
        "CREATE TABLE filler AS SELECT n, md5(n::text) || md5((n * 7)::text) AS pad FROM generate_series(1, 300000) n"
    )
    client = archive_s3.client()
    prefix = sealed.sealed_prefix(archive.settings)
    process = subprocess.Popen(
        [SYSTEM_PYTHON, "-m", "deploy.ops.pitr.cli", "--env-file", str(archive.env_file)]
        + ["--bindir", str(primary.bindir), "base-backup", "--host", primary.host, "--port", str(primary.port)],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **_demote_kwargs(),
    )
    try:
        deadline = time.monotonic() + 60
        while not client.list_multipart_uploads(Bucket=archive.settings.bucket, Prefix=prefix).get("Uploads"):
            assert process.poll() is None, "the backup ended before it could be interrupted"
            assert time.monotonic() < deadline, "no upload started in 60 s"
            time.sleep(0.02)
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode != 0
    assert ENCRYPTION_KEY.encode() not in stderr
    assert runner.list_backups(archive.settings, cluster_os_user()) == []
    assert not client.list_objects_v2(Bucket=archive.settings.bucket, Prefix=prefix).get("Contents")
    uploads = client.list_multipart_uploads(Bucket=archive.settings.bucket, Prefix=prefix).get("Uploads", [])
    if signal_number == signal.SIGINT:
        assert uploads == [], "Ctrl-C left the partial upload behind"
    else:
        assert len(uploads) == 1
        in_two_days = datetime.now(UTC) + timedelta(days=2)
        basebackup.retention(archive.settings, [], now=in_two_days)
        assert not client.list_multipart_uploads(Bucket=archive.settings.bucket, Prefix=prefix).get("Uploads")

    manifest = take(archive)  # the server let go of the interrupted backup
    assert [entry["backup_id"] for entry in runner.list_backups(archive.settings, cluster_os_user())] == [
        manifest.backup_id
    ]


def test_without_a_key_the_backup_is_stored_unsealed_and_a_sealed_one_needs_the_right_key(archive: Archive) -> None:
    """As the dumps: BACKUP_ENCRYPTION_KEY is optional (the sha256 is still checked), and a sealed
    backup is refused with a sentence, not a traceback, when the key is missing or another one."""
    primary = archive.primary
    unsealed_settings = dataclasses.replace(archive.settings, encryption_key=None)
    plain = basebackup.take(
        unsealed_settings, str(primary.bindir), primary.host, primary.port, "postgres", cluster_os_user()
    )
    assert plain.data_key.endswith("/base.tar.gz") and not plain.encrypted
    laid = archive.root / "plain" / "data"
    basebackup.restore(unsealed_settings, plain, laid, cluster_os_user())
    assert (laid / "PG_VERSION").read_text().strip() == primary.psql("SHOW server_version_num")[:2]
    assert "START WAL LOCATION" in (laid / "backup_label").read_text()
    assert (laid / "pg_wal" / "archive_status").is_dir()

    sealed_one = take(archive)
    for settings, why in (
        (unsealed_settings, "BACKUP_ENCRYPTION_KEY is not set"),
        (dataclasses.replace(archive.settings, encryption_key="another-key-" + "x" * 32), "not the key"),
    ):
        with pytest.raises(basebackup.BaseBackupError, match=why):
            basebackup.restore(settings, sealed_one, archive.root / "refused" / "data", cluster_os_user())
        assert not (archive.root / "refused" / "data").exists()

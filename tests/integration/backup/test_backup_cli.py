"""Backup, list, restore, verify and retention through the real ops CLI (PostgreSQL + moto over HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devtools.local_postgres import LocalPostgresError
from server.db_migrations import code_head

from .conftest import ENCRYPTION_KEY, RELEASE, Ops, scratch_databases, table_digests


def backup_id_from(stdout: str) -> str:
    return stdout.split()[1].rstrip(":")


def test_backup_then_restore_into_a_new_database_reproduces_every_table(ops: Ops, source_db: str, local_s3, bucket):
    result = ops.ok("backup")
    backup_id = backup_id_from(result.stdout)
    assert "complete" in result.stdout

    listing = ops.listing()
    assert [m["backup_id"] for m in listing["complete"]] == [backup_id] and listing["incomplete"] == []
    manifest = listing["complete"][0]
    source = table_digests(ops.cluster, source_db)
    assert manifest["database"] == source_db
    assert manifest["release"] == RELEASE
    assert manifest["migration_head"] == code_head()
    assert manifest["server_version"].startswith("15")
    assert manifest["row_counts"] == {table: int(digest.split(":")[0]) for table, digest in source.items()}
    assert manifest["row_counts"]["purchases"] == 400 and manifest["encryption"] is None
    assert manifest["verification"] is None

    keys = sorted(obj["Key"] for obj in local_s3.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"backups/{backup_id}/dump.pgc.zst", f"backups/{backup_id}/manifest.json"]

    target = ops.remember("bk_restored")
    restored = ops.ok("restore", "--backup", backup_id, "--target", target)
    assert "sha256 verified" in restored.stdout and f"restored into {target}" in restored.stdout
    assert table_digests(ops.cluster, target) == source
    # audit_logs stays append-only after a restore: its trigger and its REVOKEs come back too.
    acl = "SELECT relacl::text FROM pg_class WHERE relname = 'audit_logs'"
    assert ops.cluster.psql(acl, target) == ops.cluster.psql(acl, source_db)
    with pytest.raises(LocalPostgresError, match="append-only"):
        ops.cluster.psql("DELETE FROM audit_logs", target)

    table = ops.ok("backups").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "FINISHED", "SIZE"]
    assert table[1].startswith(backup_id) and "v9.9.9-test" in table[1] and table[1].rstrip().endswith("no")


def test_encrypted_backup_round_trip_and_wrong_key(ops: Ops, source_db: str, local_s3, bucket):
    backup_id = backup_id_from(ops.ok("backup", BACKUP_ENCRYPTION_KEY=ENCRYPTION_KEY).stdout)
    manifest = ops.listing()["complete"][0]
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM-CHUNKED-v1"
    stored = local_s3.client().get_object(Bucket=bucket, Key=manifest["data_key"])["Body"].read()
    assert stored.startswith(b"CNBKGCM1") and b"PGDMP" not in stored and b"example.test" not in stored

    wrong = ops.run(
        "restore",
        "--backup",
        backup_id,
        "--target",
        "bk_wrong_key",
        BACKUP_ENCRYPTION_KEY="another-key-of-sufficient-length-0123456789",
    )
    assert wrong.returncode == 1
    assert "BACKUP_ENCRYPTION_KEY is not the key this backup was encrypted with" in wrong.stderr
    missing = ops.run("restore", "--backup", backup_id, "--target", "bk_wrong_key")
    assert missing.returncode == 1 and "is encrypted: BACKUP_ENCRYPTION_KEY is not set" in missing.stderr
    assert ops.cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'bk_wrong_key'") == "0"

    target = ops.remember("bk_decrypted")
    ops.ok("restore", "--backup", backup_id, "--target", target, BACKUP_ENCRYPTION_KEY=ENCRYPTION_KEY)
    assert table_digests(ops.cluster, target) == table_digests(ops.cluster, source_db)


def test_verify_backup_passes_records_the_result_and_drops_the_scratch_database(ops: Ops):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    result = ops.ok("verify-backup")
    for check in ("checksum", "restore", "row counts", "migration head", "foreign keys", "wallets"):
        assert f"ok   {check}:" in result.stdout
    assert f"backup {backup_id} PASSED" in result.stdout
    assert scratch_databases(ops.cluster) == []
    verification = ops.listing()["complete"][0]["verification"]
    assert verification["ok"] is True and verification["backup_id"] == backup_id
    assert {check["name"] for check in verification["checks"]} >= {"checksum", "row counts", "foreign keys"}
    assert ops.ok("backups").stdout.splitlines()[1].split()[-3] == "yes"


def test_restore_refuses_the_live_database_without_confirmation_and_an_occupied_target(ops: Ops, source_db: str):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    refused = ops.run("restore", "--backup", backup_id, "--target", source_db)
    assert refused.returncode == 2 and "needs --confirm-live" in refused.stderr

    occupied = ops.remember("bk_occupied")
    ops.cluster.create_database(occupied)
    ops.cluster.psql("CREATE TABLE keep_me (id int)", occupied)
    busy = ops.run("restore", "--backup", backup_id, "--target", occupied)
    assert busy.returncode == 2 and "already has tables" in busy.stderr
    assert ops.cluster.psql("SELECT count(*) FROM keep_me", occupied) == "0"

    unknown = ops.run("restore", "--backup", "20990101T000000Z-000000", "--target", "bk_x")
    assert unknown.returncode == 1 and "no backup 20990101T000000Z-000000" in unknown.stderr
    bad_name = ops.run("restore", "--backup", backup_id, "--target", "x; DROP DATABASE y")
    assert bad_name.returncode == 2 and "invalid database name" in bad_name.stderr


def test_restore_over_the_live_database_takes_a_safety_backup_first(ops: Ops, source_db: str):
    before = table_digests(ops.cluster, source_db)
    backup_id = backup_id_from(ops.ok("backup").stdout)
    # Damage after the backup: a deleted purchase chain and a changed wallet.
    ops.cluster.psql(
        "UPDATE wallets SET pending_balance = pending_balance + 1000; "
        "INSERT INTO login_attempts (email) VALUES ('after-backup@example.test')",
        source_db,
    )
    assert table_digests(ops.cluster, source_db) != before

    result = ops.ok("restore", "--backup", backup_id, "--target", source_db, "--confirm-live")
    assert "safety backup" in result.stdout
    assert table_digests(ops.cluster, source_db) == before
    complete = ops.listing()["complete"]
    reasons = {m["backup_id"]: m["reason"] for m in complete}
    assert reasons[backup_id] == "manual" and sorted(reasons.values()) == ["manual", "safety"]
    # The safety backup holds the damaged state: restoring it brings the change back.
    safety = next(bid for bid, reason in reasons.items() if reason == "safety")
    undo = ops.remember("bk_safety_check")
    ops.ok("restore", "--backup", safety, "--target", undo)
    assert (
        ops.cluster.psql("SELECT count(*) FROM login_attempts WHERE email = 'after-backup@example.test'", undo) == "1"
    )


def _backdate(local_s3, bucket: str, backup_id: str, days: float) -> None:
    """Age a backup as retention sees it: by its manifest's finished time."""
    client = local_s3.client()
    key = f"backups/{backup_id}/manifest.json"
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    finished = datetime.now(UTC) - timedelta(days=days)
    manifest["finished_at"] = finished.isoformat()
    manifest["started_at"] = (finished - timedelta(seconds=5)).isoformat()
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())


def test_retention_with_several_backups(ops: Ops, local_s3, bucket):
    ids = [backup_id_from(ops.ok("backup").stdout) for _ in range(5)]
    # Ages chosen so name order and time order disagree: the newest by name is the oldest by time.
    ages = {ids[0]: 1, ids[1]: 40, ids[2]: 10, ids[3]: 50, ids[4]: 60}
    for backup_id, days in ages.items():
        _backdate(local_s3, bucket, backup_id, days)
    leftover = "20261101T000000Z-leftov"  # data without a manifest, fresh: kept for now
    local_s3.client().put_object(Bucket=bucket, Key=f"backups/{leftover}/dump.pgc.zst", Body=b"partial")

    listed = ops.listing()
    assert [m["backup_id"] for m in listed["complete"]] == [ids[0], ids[2], ids[1], ids[3], ids[4]]
    assert listed["incomplete"] == [leftover]

    dry = ops.ok("prune-backups", "--dry-run", BACKUP_RETENTION_DAYS="28", BACKUP_MIN_KEEP="3")
    assert f"would delete {ids[3]} (expired)" in dry.stdout and f"would delete {ids[4]} (expired)" in dry.stdout
    assert f"keep     {ids[1]}" in dry.stdout  # 40 days old but needed for the minimum of 3
    assert leftover not in dry.stdout.replace("incomplete", "")
    assert len(ops.listing()["complete"]) == 5  # dry run deleted nothing

    ops.ok("prune-backups", BACKUP_RETENTION_DAYS="28", BACKUP_MIN_KEEP="3")
    after = ops.listing()
    assert [m["backup_id"] for m in after["complete"]] == [ids[0], ids[2], ids[1]]
    assert after["incomplete"] == [leftover]
    remaining = {obj["Key"].split("/")[1] for obj in local_s3.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert remaining == {ids[0], ids[2], ids[1], leftover}

    # Everything expired: the newest complete backup still stays.
    ops.ok("prune-backups", BACKUP_RETENTION_DAYS="1", BACKUP_MIN_KEEP="1")
    assert [m["backup_id"] for m in ops.listing()["complete"]] == [ids[0]]


def test_verify_backup_fails_on_a_wallet_mismatch_and_on_orphaned_rows(ops: Ops, source_db: str):
    ops.cluster.psql(
        "UPDATE wallets SET pending_balance = pending_balance + 0.01 "
        "WHERE user_id = (SELECT min(user_id::text)::uuid FROM wallets)",
        source_db,
    )
    ops.ok("backup")
    wallets = ops.run("verify-backup")
    assert wallets.returncode == 1
    assert "FAIL wallets:" in wallets.stdout and "ok   row counts" in wallets.stdout
    assert scratch_databases(ops.cluster) == []

    # A purchase whose user is gone (foreign key bypassed on the source): the drill must refuse it.
    ops.cluster.psql(
        "SET session_replication_role = replica; "
        "UPDATE cashback_transactions SET user_id = '00000000-0000-0000-0000-0000000000aa' "
        "WHERE id = (SELECT id FROM cashback_transactions ORDER BY id LIMIT 1)",
        source_db,
    )
    ops.ok("backup")
    orphans = ops.run("verify-backup")
    assert orphans.returncode == 1
    assert "FAIL restore:" in orphans.stdout and "cashback_transactions" in orphans.stdout
    assert "rolled back" in orphans.stdout
    assert scratch_databases(ops.cluster) == []

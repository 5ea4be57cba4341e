"""Pure rules of the backup store: ids, keys, manifest round trip, listing, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from deploy.ops.backup.model import (
    BackupFolder,
    Manifest,
    ManifestError,
    StoredObject,
    backup_id_of_key,
    data_key,
    format_backup_table,
    group_by_backup,
    human_size,
    is_complete,
    listing_row,
    manifest_key,
    new_backup_id,
    normalise_prefix,
    plan_retention,
    unusable_reason,
    verification_key,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def make_manifest(**overrides) -> Manifest:
    values = dict(
        backup_id="20261127T010203Z-abcdef",
        database="clicknback",
        data_key="backups/20261127T010203Z-abcdef/dump.pgc.zst",
        size_bytes=1234,
        sha256="a" * 64,
        compression="zstd",
        encryption=None,
        server_version="15.8",
        pg_dump_version="pg_dump (PostgreSQL) 15.8",
        release={"version": "v1.2.0", "commit": "f" * 40},
        migration_head="1_20261127000100_audit_append_only.py",
        row_counts={"users": 3, "wallets": 3},
        started_at="2026-11-27T01:02:03+00:00",
        finished_at="2026-11-27T01:02:09+00:00",
        duration_seconds=6.0,
    )
    values.update(overrides)
    return Manifest(**values)


def test_backup_id_is_utc_timestamp_plus_suffix():
    moment = datetime(2026, 11, 27, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert new_backup_id(moment, "abc123") == "20261127T010405Z-abc123"
    assert len(new_backup_id(moment)) == len("20261127T010405Z-abc123")


@pytest.mark.parametrize("raw, expected", [("backups", "backups/"), ("/a/b/", "a/b/"), ("", ""), ("x/", "x/")])
def test_prefix_is_normalised(raw, expected):
    assert normalise_prefix(raw) == expected


def test_keys_follow_the_folder_layout():
    assert data_key("backups/", "ID", "zstd", False) == "backups/ID/dump.pgc.zst"
    assert data_key("backups/", "ID", "zstd", True) == "backups/ID/dump.pgc.zst.enc"
    assert data_key("", "ID", "pg", False) == "ID/dump.pgc"
    assert manifest_key("backups/", "ID") == "backups/ID/manifest.json"
    assert verification_key("backups/", "ID") == "backups/ID/verification.json"
    assert backup_id_of_key("backups/", "backups/ID/manifest.json") == "ID"
    assert backup_id_of_key("backups/", "backups/loose-file") is None
    assert backup_id_of_key("backups/", "logs/ID/x") is None


def test_manifest_round_trips_and_rejects_garbage():
    manifest = make_manifest()
    assert Manifest.from_json(manifest.to_json()) == manifest
    with pytest.raises(ManifestError):
        Manifest.from_json(b"{not json")
    with pytest.raises(ManifestError):
        Manifest.from_json(make_manifest(finished_at="2026-11-27T01:02:09").to_json())  # no timezone
    with pytest.raises(ManifestError):
        Manifest.from_json(make_manifest(sha256="short").to_json())
    with pytest.raises(ManifestError):
        Manifest.from_json(make_manifest(format_version=99).to_json())


def _obj(key: str, size: int = 10, age_hours: float = 1) -> StoredObject:
    return StoredObject(key, size, NOW - timedelta(hours=age_hours))


def test_grouping_and_completeness():
    manifest = make_manifest()
    folders = group_by_backup(
        "backups/",
        [
            _obj("backups/20261127T010203Z-abcdef/dump.pgc.zst", 1234),
            _obj("backups/20261127T010203Z-abcdef/manifest.json"),
            _obj("backups/20261120T000000Z-000000/dump.pgc.zst", 99, age_hours=30),
            _obj("backups/stray.txt"),
        ],
    )
    assert sorted(folders) == ["20261120T000000Z-000000", "20261127T010203Z-abcdef"]
    assert is_complete(folders["20261127T010203Z-abcdef"], manifest)
    assert not is_complete(folders["20261120T000000Z-000000"], None)
    assert folders["20261120T000000Z-000000"].newest_modification == NOW - timedelta(hours=30)
    truncated = BackupFolder(
        "x", {"dump.pgc.zst": _obj("backups/x/dump.pgc.zst", 1000), "manifest.json": _obj("backups/x/manifest.json")}
    )
    assert not is_complete(truncated, manifest)  # data size differs from the manifest


def _days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_retention_keeps_the_window_and_deletes_older():
    complete = {f"b{age}": _days_ago(age) for age in (1, 8, 15, 22, 29, 36, 43)}
    plan = plan_retention(complete, {}, NOW, retention_days=28, min_keep=4)
    assert plan.keep == ["b1", "b8", "b15", "b22"]
    assert sorted(plan.delete_complete) == ["b29", "b36", "b43"]


def test_retention_never_goes_below_the_minimum_count_nor_deletes_the_newest():
    complete = {"old1": _days_ago(100), "old2": _days_ago(200), "old3": _days_ago(300)}
    assert plan_retention(complete, {}, NOW, 28, min_keep=2).keep == ["old1", "old2"]
    assert plan_retention(complete, {}, NOW, 28, min_keep=0).keep == ["old1"]  # the newest always stays


def test_retention_orders_by_manifest_time_not_by_name():
    # "z-..." sorts last by name but is the oldest by its manifest.
    complete = {"a-newest": _days_ago(40), "z-oldest": _days_ago(60)}
    plan = plan_retention(complete, {}, NOW, 28, min_keep=1)
    assert plan.keep == ["a-newest"] and plan.delete_complete == ["z-oldest"]


def test_retention_removes_incomplete_leftovers_only_after_a_day():
    plan = plan_retention({"c": _days_ago(1)}, {"fresh": NOW - timedelta(hours=2), "stale": _days_ago(2)}, NOW, 28, 4)
    assert plan.delete_incomplete == ["stale"]
    assert plan.delete == ["stale"]


def test_retention_keeps_the_newest_verified_backup_when_recent_drills_failed():
    # Weekly backups; the last good drill was 43 days ago, everything since failed or was not drilled.
    complete = {f"b{age}": _days_ago(age) for age in (1, 8, 15, 22, 29, 36, 43, 50)}
    plan = plan_retention(complete, {}, NOW, retention_days=28, min_keep=4, verified={"b43", "b50"})
    assert plan.keep == ["b1", "b8", "b15", "b22", "b43"]
    assert plan.delete_complete == ["b29", "b36", "b50"]  # an older verified one is not needed
    assert plan.reasons["b43"] == "newest verified"


def test_retention_reasons_say_why_each_backup_stays():
    complete = {"new": _days_ago(1), "second": _days_ago(40), "old": _days_ago(60)}
    plan = plan_retention(complete, {}, NOW, 28, min_keep=2, verified={"new"})
    assert plan.keep == ["new", "second"] and plan.delete_complete == ["old"]
    assert plan.reasons == {"new": "newest; younger than 28 days; newest verified", "second": "among the newest 2"}
    assert set(plan.reasons) == set(plan.keep)


def test_retention_without_any_verified_backup_keeps_the_usual_rules():
    complete = {f"b{age}": _days_ago(age) for age in (1, 30, 60)}
    unverified = plan_retention(complete, {}, NOW, 28, min_keep=1)
    assert unverified.keep == ["b1"] and unverified.delete_complete == ["b30", "b60"]
    # An id that is not a complete backup (its manifest is gone) keeps nothing alive.
    assert plan_retention(complete, {}, NOW, 28, min_keep=1, verified={"gone"}) == unverified


def test_listing_row_and_table():
    row = listing_row(
        make_manifest(size_bytes=5 * 1024 * 1024), {"ok": True, "verified_at": "2026-11-28T00:00:00+00:00"}
    )
    assert row == {
        "id": "20261127T010203Z-abcdef",
        "finished": "2026-11-27 01:02:09Z",
        "size": "5.0 MiB",
        "release": "v1.2.0",
        "migration": "1",
        "encrypted": "no",
        "verified": "yes 2026-11-28 00:00:00",
    }
    failed = listing_row(make_manifest(release=None, encryption={"algorithm": "x"}), {"ok": False, "verified_at": ""})
    assert (failed["release"], failed["encrypted"], failed["verified"]) == ("dev", "yes", "FAILED ")
    assert listing_row(make_manifest(), None)["verified"] == "no"
    table = format_backup_table([row])
    assert table.splitlines()[0].split() == ["ID", "FINISHED", "SIZE", "RELEASE", "MIGRATION", "ENCRYPTED", "VERIFIED"]
    assert "20261127T010203Z-abcdef  2026-11-27 01:02:09Z  5.0 MiB" in table


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**30, "3.0 GiB")])
def test_human_size(size, text):
    assert human_size(size) == text


def test_an_unusable_backup_says_why_in_words():
    manifest = make_manifest()
    prefix = "backups/20261127T010203Z-abcdef/"

    def folder(**sizes: int) -> BackupFolder:
        return BackupFolder(
            "20261127T010203Z-abcdef",
            {name: StoredObject(prefix + name, size, NOW) for name, size in sizes.items()},
        )

    assert unusable_reason(folder(**{"manifest.json": 10, "dump.pgc.zst": 1234}), manifest) is None
    assert unusable_reason(folder(**{"manifest.json": 10, "dump.pgc.zst": 1000}), manifest) == (
        "size mismatch: dump.pgc.zst is 1000 bytes, its manifest records 1234 (truncated or overwritten)"
    )
    assert unusable_reason(folder(**{"manifest.json": 10}), manifest) == "its data object dump.pgc.zst is missing"
    assert unusable_reason(folder(**{"dump.pgc.zst": 7}), None) == "no manifest (the backup never finished uploading)"
    assert unusable_reason(folder(**{"manifest.json": 3, "dump.pgc.zst": 7}), None) == "its manifest is unreadable"
    other = make_manifest(backup_id="20261127T010203Z-zzzzzz")
    assert unusable_reason(folder(**{"manifest.json": 10, "dump.pgc.zst": 1234}), other) == (
        "its manifest names another backup (20261127T010203Z-zzzzzz)"
    )

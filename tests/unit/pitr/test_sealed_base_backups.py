"""The pure half of sealed base backups (ADR 0045): argv, backup_label and manifest, choice, retention."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta

import pytest

from deploy.ops.pitr import barman, sealed

SETTINGS = barman.load_pitr_settings(
    {"S3_BUCKET": "b", "S3_ACCESS_KEY_ID": "id", "S3_SECRET_ACCESS_KEY": "secret", "PITR_PREFIX": "pitr/prod"}
)
LABEL = (
    "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
    "CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n"
    "START TIME: 2026-12-06 10:00:00 UTC\nLABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n"
)


def tar_of(*members: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_pg_basebackup_writes_one_plain_tar_to_stdout_with_a_fast_checkpoint_and_no_wal() -> None:
    argv = sealed.basebackup_argv("/usr/lib/postgresql/15/bin/", "/var/run/postgresql", 5432, "postgres")
    assert argv[0] == "/usr/lib/postgresql/15/bin/pg_basebackup"
    for option in ("--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast", "--no-password"):
        assert option in argv
    assert "--compress" not in " ".join(argv)  # gzip and sealing happen in our process, on the stream
    assert argv[argv.index("--port") + 1] == "5432"


def test_the_backup_label_is_read_off_the_streams_head_in_small_chunks() -> None:
    stream = tar_of(("backup_label", LABEL.encode()), ("base/1/1259", b"\0" * 8192))
    reader = sealed.LabelReader()
    for start in range(0, len(stream), 100):
        reader.feed(stream[start : start + 100])
    assert reader.label() == sealed.Label("0/2000028", "000000010000000000000002", 1)


def test_a_tar_that_does_not_start_with_backup_label_is_refused() -> None:
    reader = sealed.LabelReader()
    reader.feed(tar_of(("base/1/1259", b"x" * 600), ("backup_label", LABEL.encode())))
    with pytest.raises(barman.PitrSettingsError, match="does not start with backup_label"):
        reader.label()


def test_the_stop_lsn_comes_from_the_manifest_at_the_tars_end() -> None:
    manifest = json.dumps(
        {"Files": [{"Path": "x"}], "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000138"}]},
        indent=1,
    )
    reader = sealed.TailReader()
    reader.feed(b"\0" * (sealed.TAIL_LIMIT * 2))
    reader.feed(manifest.encode() + b"\0" * 1024)
    assert reader.stop_lsn() == "0/2000138"
    with pytest.raises(barman.PitrSettingsError, match="End-LSN"):
        sealed.TailReader().stop_lsn()


def manifest(backup_id: str = "20261206T100000Z-abc123", **extra) -> sealed.BaseManifest:
    fields = {
        "backup_id": backup_id,
        "server_name": "clicknback",
        "begin_time": "2026-12-06T10:00:00+00:00",
        "end_time": "2026-12-06T10:01:00+00:00",
        "begin_lsn": "0/2000028",
        "end_lsn": "0/2000138",
        "timeline": 1,
        "begin_wal": "000000010000000000000002",
        "data_key": sealed.data_key(SETTINGS, backup_id, True),
        "size_bytes": 1234,
        "sha256": "a" * 64,
        "encryption": {"algorithm": "AES-256-GCM-CHUNKED-v1", "salt": "00", "key_check": "x", "chunk_size": 1},
    }
    return sealed.BaseManifest(**{**fields, **extra})


def test_the_manifest_round_trips_and_lists_like_barmans_backups() -> None:
    original = manifest()
    assert sealed.BaseManifest.from_json(original.to_json()) == original
    entry = original.entry()
    assert entry["kind"] == "sealed" and entry["status"] == "DONE" and entry["encrypted"] is True
    assert original.data_key == "pitr/prod/clicknback/sealed/20261206T100000Z-abc123/base.tar.gz.enc"
    assert sealed.manifest_key(SETTINGS, original.backup_id).endswith("/20261206T100000Z-abc123/manifest.json")
    assert barman.parse_barman_time(entry["end_time"]) == datetime(2026, 12, 6, 10, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"[]", json.dumps({"format": "other"}).encode(), manifest(begin_wal="../x").to_json(), b'{"format": "x"}'],
)
def test_an_unreadable_or_foreign_manifest_is_an_error_never_a_backup(raw: bytes) -> None:
    with pytest.raises(sealed.ManifestError):
        sealed.BaseManifest.from_json(raw)


def test_a_folder_without_its_manifest_is_deleted_only_after_the_grace() -> None:
    prefix = sealed.sealed_prefix(SETTINGS)
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    old, fresh = now - timedelta(days=2), now - timedelta(hours=1)
    keys = [
        (f"{prefix}A/base.tar.gz.enc", old),
        (f"{prefix}A/manifest.json", old),
        (f"{prefix}B/base.tar.gz.enc", old),
        (f"{prefix}C/base.tar.gz.enc", fresh),
    ]
    assert sealed.incomplete_keys(prefix, keys, now) == [f"{prefix}B/base.tar.gz.enc"]


def entry(backup_id: str, end: str, begin_wal: str, kind: str = "sealed") -> dict:
    return {"backup_id": backup_id, "status": "DONE", "end_time": end, "begin_wal": begin_wal, "kind": kind}


def test_retention_keeps_the_newest_of_either_kind_and_cuts_wal_at_the_oldest_kept_start() -> None:
    entries = [
        entry("barman-old", "Sun Dec  6 08:00:00 2026", "000000010000000000000003", kind="barman"),
        entry("barman-new", "Sun Dec  6 09:00:00 2026", "000000010000000000000007", kind="barman"),
        entry("S1", "2026-12-06T10:00:00+00:00", "00000001000000000000000A"),
        entry("S2", "2026-12-06T11:00:00+00:00", "000000020000000000000010"),
        {"backup_id": "failed", "status": "FAILED", "end_time": "Sun Dec  6 12:00:00 2026", "kind": "barman"},
    ]
    kept, dropped = sealed.plan_retention(entries, 3)
    assert [e["backup_id"] for e in kept] == ["S2", "S1", "barman-new"]
    assert [e["backup_id"] for e in dropped] == ["barman-old"]
    assert sealed.wal_cut(kept) == "000000010000000000000007"


def test_the_wal_cut_deletes_older_segments_of_its_timeline_and_older_ones_but_keeps_history() -> None:
    wals = "pitr/prod/clicknback/wals/"
    keys = [
        f"{wals}0000000100000000/000000010000000000000005",
        f"{wals}0000000100000000/000000010000000000000006.gz",
        f"{wals}0000000100000000/000000010000000000000006.00000028.backup",
        f"{wals}0000000100000000/000000010000000000000007",
        f"{wals}0000000200000000/000000020000000000000008",
        f"{wals}00000002.history",
        f"{wals}0000000200000000/000000020000000000000006.partial",
    ]
    doomed = sealed.wal_keys_to_delete(keys, "000000020000000000000007")
    assert doomed == [keys[0], keys[1], keys[2], keys[6]]
    # A later timeline's segments before the cut's position are another history: kept.
    assert (
        sealed.wal_keys_to_delete([f"{wals}0000000300000000/000000030000000000000001"], "000000020000000000000007")
        == []
    )


def test_a_kept_backup_of_unknown_start_deletes_no_wal() -> None:
    assert sealed.wal_cut([entry("S1", "2026-12-06T10:00:00+00:00", "")]) is None
    assert sealed.wal_cut([]) is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../outside", tarfile.REGTYPE), ("/etc/passwd", tarfile.REGTYPE), ("pg_tblspc/1", tarfile.SYMTYPE)],
)
def test_a_restore_refuses_members_outside_the_data_folder_and_links(tmp_path, name: str, kind: bytes) -> None:
    from deploy.ops.pitr import basebackup

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = "/tmp" if kind == tarfile.SYMTYPE else ""
        tar.addfile(info, io.BytesIO(b""))
    out.seek(0)
    with pytest.raises(basebackup.BaseBackupError, match="which a restore refuses"):
        basebackup._untar(out, tmp_path / "data", "B1")
    assert not (tmp_path / "outside").exists() and list((tmp_path / "data").iterdir()) == []

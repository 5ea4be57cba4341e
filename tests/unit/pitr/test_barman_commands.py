"""The pure half of WAL archiving: settings, barman-cloud argv, PostgreSQL settings, backup choice."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

import pytest

from deploy.ops.pitr import barman
from deploy.ops.pitr.wal import read_env_file, seal, unseal

ENV = {
    "S3_BUCKET": "cnb-backups",
    "S3_ENDPOINT_URL": "http://127.0.0.1:9000",
    "S3_REGION": "eu-west-1",
    "S3_ACCESS_KEY_ID": "AKIA-id",
    "S3_SECRET_ACCESS_KEY": "secret-never-in-argv",
}
KEY = "k" * 40


def settings(**extra: str) -> barman.PitrSettings:
    return barman.load_pitr_settings({**ENV, **extra})


def test_credentials_travel_in_the_environment_never_in_argv() -> None:
    s = settings(BACKUP_ENCRYPTION_KEY=KEY)
    argvs = [
        barman.wal_archive_argv(s, "pg_wal/000000010000000000000001", compress=True),
        barman.wal_restore_argv(s, "000000010000000000000001", "pg_wal/RECOVERYXLOG"),
        barman.base_backup_argv(s, "127.0.0.1", 5432, "postgres"),
        barman.backup_list_argv(s),
        barman.restore_argv(s, "20261206T101500", "/var/lib/postgresql/restore"),
    ]
    for argv in argvs:
        joined = " ".join(argv)
        assert "secret-never-in-argv" not in joined and KEY not in joined
        assert "--endpoint-url http://127.0.0.1:9000" in joined
        assert "s3://cnb-backups/pitr clicknback" in joined
    assert s.cloud_env()["AWS_SECRET_ACCESS_KEY"] == "secret-never-in-argv"
    assert "secret-never-in-argv" not in repr(s) and KEY not in repr(s)


def test_server_side_encryption_is_passed_when_asked_for() -> None:
    argv = barman.base_backup_argv(settings(PITR_S3_SSE="AES256"), "h", 1, "u")
    assert argv[argv.index("--encryption") + 1] == "AES256"
    assert "--encryption" not in barman.base_backup_argv(settings(), "h", 1, "u")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PITR_PREFIX", "../other"),
        ("PITR_SERVER_NAME", "a b"),
        ("PITR_REDUNDANCY", "0"),
        ("PITR_REDUNDANCY", "many"),
        ("PITR_S3_SSE", "rot13"),
        ("BACKUP_ENCRYPTION_KEY", "short"),
        ("S3_BUCKET", ""),
    ],
)
def test_bad_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(barman.PitrSettingsError, match=name):
        settings(**{name: value})


def test_wal_commands_quote_paths_and_use_postgres_placeholders() -> None:
    push = barman.wal_command("/usr/bin/python3", "/srv/app/current", "/etc/clicknback/pitr env", "push")
    fetch = barman.wal_command("/usr/bin/python3", "/srv/app/current", "/etc/pitr.env", "fetch")
    assert push.endswith("push %p") and fetch.endswith("fetch %f %p")
    assert shlex.split(push)[0] == "PYTHONPATH=/srv/app/current"
    assert "'/etc/clicknback/pitr env'" in push


def test_archive_settings_bound_the_rpo_and_survive_quotes_in_sql() -> None:
    values = barman.archive_settings("cmd 'quoted' %p", timeout_seconds=60)
    assert values["archive_mode"] == "on" and values["archive_timeout"] == "60s"
    assert "ALTER SYSTEM SET archive_command = 'cmd ''quoted'' %p'" in barman.alter_system_sql(values)


def test_recovery_settings_stop_at_the_target_and_never_archive_the_copy() -> None:
    target = datetime(2026, 12, 6, 11, 15, 0, tzinfo=UTC)
    values = barman.recovery_settings("fetch %f %p", target)
    assert values["recovery_target_time"] == "2026-12-06 11:15:00.000000+00"
    assert values["recovery_target_action"] == "promote"
    assert values["archive_mode"] == "off"
    assert "recovery_target_time" not in barman.recovery_settings("fetch %f %p", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-06T10:15:00Z", datetime(2026, 12, 6, 10, 15, tzinfo=UTC)),
        ("2026-12-06T12:15:00+02:00", datetime(2026, 12, 6, 10, 15, tzinfo=UTC)),
    ],
)
def test_target_times_need_a_zone(text: str, expected: datetime) -> None:
    assert barman.parse_target_time(text) == expected


@pytest.mark.parametrize("text", ["2026-12-06T10:15:00", "yesterday", ""])
def test_target_times_without_a_zone_or_garbled_are_refused(text: str) -> None:
    with pytest.raises(barman.PitrSettingsError, match="--to-time"):
        barman.parse_target_time(text)


BACKUPS = [
    {"backup_id": "B1", "status": "DONE", "end_time": "Sun Dec  6 09:00:00 2026"},
    {"backup_id": "B2", "status": "DONE", "end_time": "Sun Dec  6 10:00:00 2026"},
    {"backup_id": "B3", "status": "FAILED", "end_time": "Sun Dec  6 10:30:00 2026"},
    {"backup_id": "B4", "status": "DONE", "end_time": "2026-12-06T11:00:00.5+00:00", "kind": "sealed"},
]


def test_the_newest_backup_that_ended_before_the_target_is_chosen() -> None:
    at = datetime(2026, 12, 6, 10, 45, tzinfo=UTC)
    assert barman.choose_backup(BACKUPS, at)["backup_id"] == "B2"
    assert barman.choose_backup(BACKUPS, None) == BACKUPS[3]  # ours (ISO end) and barman's side by side


def test_a_target_before_every_backup_is_refused_with_the_oldest_time() -> None:
    with pytest.raises(barman.PitrSettingsError, match="oldest ended 2026-12-06T09:00:00"):
        barman.choose_backup(BACKUPS, datetime(2026, 12, 6, 8, 0, tzinfo=UTC))
    with pytest.raises(barman.PitrSettingsError, match="no finished base backup"):
        barman.choose_backup([BACKUPS[2]], None)


def test_sealed_segments_round_trip_and_a_wrong_key_fails() -> None:
    from deploy.ops.backup.crypto import DecryptionError

    segment = b"\x00" * 16 * 1024 * 1024
    sealed = seal(segment, KEY)
    assert len(sealed) < len(segment) // 100  # compressed before encryption
    assert unseal(sealed, KEY) == segment
    with pytest.raises(DecryptionError):
        unseal(sealed, "w" * 40)


def test_the_secrets_file_is_read_like_the_services(tmp_path) -> None:
    path = tmp_path / "env"
    path.write_text("# comment\nS3_BUCKET='cnb'\nexport PITR_PREFIX=\"pitr/x\"\nBROKEN\n")
    assert read_env_file(str(path)) == {"S3_BUCKET": "cnb", "PITR_PREFIX": "pitr/x"}

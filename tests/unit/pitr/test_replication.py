"""Standby, synchronous commit, promotion and fencing: the commands and settings, and the lag rule."""

from __future__ import annotations

import pytest

from deploy.ops.pitr import replication


def test_the_standby_copy_writes_its_recovery_settings_and_creates_its_slot() -> None:
    argv = replication.base_backup_argv("/usr/lib/postgresql/15/bin", "10.0.0.2", 5432, "replicator", "/d", "standby_1")
    assert argv[0].endswith("/pg_basebackup")
    assert {"--write-recovery-conf", "--create-slot", "--wal-method=stream", "--no-password"} <= set(argv)
    assert argv[argv.index("--slot") + 1] == "standby_1"


@pytest.mark.parametrize("name", ["Standby", "standby-1", "a b", "", "x" * 64, "s;drop"])
def test_slot_names_that_postgres_or_a_shell_would_mangle_are_refused(name: str) -> None:
    with pytest.raises(replication.ReplicationError, match="standby name"):
        replication.base_backup_argv("/b", "h", 1, "u", "/d", name)


def test_the_archive_is_the_fallback_and_the_standby_is_named_for_sync_commit() -> None:
    settings = replication.standby_settings("standby_1", "fetch %f %p")
    assert settings["restore_command"] == "fetch %f %p" and settings["cluster_name"] == "standby_1"
    assert "restore_command" not in replication.standby_settings("standby_1", None)


def test_synchronous_commit_names_one_standby_and_can_be_turned_off() -> None:
    assert replication.synchronous_sql("standby_1")[0].endswith("= 'FIRST 1 (standby_1)'")
    assert replication.synchronous_sql(None)[0].endswith("= ''")


def test_a_fenced_old_primary_follows_the_new_one_read_only() -> None:
    fence = replication.fence_settings("host=10.0.0.2 port=5432")
    assert fence == {"primary_conninfo": "host=10.0.0.2 port=5432", "default_transaction_read_only": "on"}


def test_lag_is_flagged_in_bytes_or_seconds_and_no_standby_is_its_own_status() -> None:
    ok = {"application_name": "s", "state": "streaming", "sync_state": "async", "lag_bytes": 10, "lag_s": 0.1}
    assert replication.lag_report([ok])["status"] == "ok"
    assert replication.lag_report([{**ok, "lag_bytes": 64 * 1024 * 1024}])["status"] == "late"
    assert replication.lag_report([{**ok, "lag_s": 120.0}])["status"] == "late"
    assert replication.lag_report([{**ok, "state": "catchup"}])["status"] == "late"
    assert replication.lag_report([])["status"] == "none"


def test_lag_seconds_are_a_float_even_when_postgresql_writes_zero_as_an_int() -> None:
    row = {"application_name": "s", "state": "streaming", "sync_state": "sync", "lag_bytes": 0, "lag_s": 0}
    [standby] = replication.lag_report([row])["standbys"]
    assert isinstance(standby["lag_s"], float) and standby["lag_s"] == 0.0

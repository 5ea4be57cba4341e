"""Pure parts of the backup invoke tasks: host choice, restore arguments, schema guard, stop command."""

from __future__ import annotations

import pytest

from deploy.commands import Layout
from deploy.tasks.backup import (
    TASKS,
    BackupTaskError,
    check_restorable_by_release,
    code_head_number,
    code_migrations_command,
    pick_host_index,
    restore_ops_args,
    stop_instances_command,
)


def test_host_choice():
    assert pick_host_index(["host-2", "host-3"], None) == 0
    assert pick_host_index(["host-2", "host-3"], "host-3") == 1
    with pytest.raises(BackupTaskError, match="no host named 'host-9'"):
        pick_host_index(["host-2", "host-3"], "host-9")


def test_restore_arguments():
    assert restore_ops_args("ID", "scratch", False) == ["restore", "--backup", "ID", "--target", "scratch"]
    assert restore_ops_args("ID", None, True) == ["restore", "--backup", "ID", "--confirm-live"]
    with pytest.raises(BackupTaskError, match="--target DB"):
        restore_ops_args("ID", None, False)
    assert restore_ops_args("ID", None, True, safety_backup=False) == [
        "restore",
        "--backup",
        "ID",
        "--confirm-live",
        "--no-safety-backup",
    ]


def test_target_with_confirm_live_is_refused_before_any_host_is_touched():
    # It used to stop the app, restore into the target and then claim the live database was restored.
    with pytest.raises(BackupTaskError) as refused:
        restore_ops_args("ID", "clicknback_check", True)
    assert str(refused.value) == (
        "give --target DB (restore into a new database, no downtime) or --confirm-live "
        "(replace the live database), not both"
    )


def test_no_safety_backup_needs_confirm_live():
    with pytest.raises(BackupTaskError, match="--no-safety-backup only applies to replacing the live database"):
        restore_ops_args("ID", "clicknback_check", False, safety_backup=False)


def test_code_head_is_read_from_the_release_without_a_database():
    assert code_migrations_command(Layout("/srv/clicknback"), "20261127T000000Z-v1.0.0") == (
        "ls -1 /srv/clicknback/releases/20261127T000000Z-v1.0.0/migrations/models"
    )
    listing = "0_20261127000000_init.py\n10_20270101000000_x.py\n2_20261127000200_y.py\n__init__.py\n__pycache__\n"
    assert code_head_number(listing) == 10  # numerically, not by name
    with pytest.raises(BackupTaskError, match="no migration files"):
        code_head_number("__init__.py\n")


def test_backup_newer_than_the_code_is_refused():
    check_restorable_by_release("1_20261127000100_audit_append_only.py", 1)
    check_restorable_by_release("0_20261127000000_init.py", 1)
    check_restorable_by_release(None, 1)
    with pytest.raises(BackupTaskError, match="migration 2, newer"):
        check_restorable_by_release("2_20991231000000_x.py", 1)


def test_stop_instances_command_golden():
    assert stop_instances_command(Layout("/srv/clicknback"), (8001, 8002)) == (
        "supervisorctl -c /srv/clicknback/supervisor/supervisord.conf stop app-8001 >/dev/null 2>&1; "
        "supervisorctl -c /srv/clicknback/supervisor/supervisord.conf stop app-8002 >/dev/null 2>&1; true"
    )


def test_every_task_is_documented():
    assert [t.name for t in TASKS] == [
        "backup",
        "backups",
        "restore",
        "verify_backup",
        "prune_backups",
    ]  # invoke shows them dashed
    for backup_task in TASKS:
        assert backup_task.__doc__ and backup_task.__doc__.strip()
        for option, text in backup_task.help.items():
            assert text, option


def test_progress_is_shown_only_to_a_person(capsys):
    from deploy.ops.backup.process import Progress

    quiet = Progress("uploading", enabled=False)
    quiet.update(5 * 2**20)
    quiet.done()
    shown = Progress("uploading", enabled=True)
    shown.update(3 * 2**20)
    shown.done()
    err = capsys.readouterr().err
    assert err.startswith("\ruploading:      3.0 MiB") and err.endswith("MiB/s\n")

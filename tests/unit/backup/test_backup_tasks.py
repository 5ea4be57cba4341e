"""Pure parts of the backup invoke tasks: host choice, restore arguments, schema guard, stop command."""

from __future__ import annotations

import pytest

from deploy.commands import Layout
from deploy.tasks.backup import (
    TASKS,
    BackupTaskError,
    check_restorable_by_release,
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
    assert [t.name for t in TASKS] == ["backup", "backups", "restore", "verify_backup", "prune_backups"]  # invoke shows them dashed
    for backup_task in TASKS:
        assert backup_task.__doc__ and backup_task.__doc__.strip()
        for option, text in backup_task.help.items():
            assert text, option


def test_progress_is_shown_only_to_a_person(capsys):
    from deploy.ops.backup_process import Progress

    quiet = Progress("uploading", enabled=False)
    quiet.update(5 * 2**20)
    quiet.done()
    shown = Progress("uploading", enabled=True)
    shown.update(3 * 2**20)
    shown.done()
    err = capsys.readouterr().err
    assert err.startswith("\ruploading:      3.0 MiB") and err.endswith("MiB/s\n")

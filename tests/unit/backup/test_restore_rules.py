"""Pure rules of the ops CLI's restore: which requests are refused before anything is touched,
and the one line an operator sees when the role may not create databases."""

from __future__ import annotations

import pytest

from deploy.ops.backup.db import create_database_refused_message
from deploy.ops.backup.operations import UsageError
from deploy.ops.backup.restore import check_restore_request


def test_a_new_database_and_the_live_one_are_told_apart():
    assert check_restore_request("clicknback_check", "clicknback", confirm_live=False, safety_backup=True) is False
    assert check_restore_request("clicknback", "clicknback", confirm_live=True, safety_backup=True) is True
    assert check_restore_request("clicknback", "clicknback", confirm_live=True, safety_backup=False) is True


@pytest.mark.parametrize(
    "target, confirm_live, safety_backup, message",
    [
        ("clicknback", False, True, "is the live database (DATABASE_URL): restoring over it needs --confirm-live"),
        # --confirm-live promises the live database is replaced: another target would be a false promise.
        (
            "clicknback_check",
            True,
            True,
            "--confirm-live replaces the live database clicknback, but --target names clicknback_check",
        ),
        ("clicknback_check", False, False, "--no-safety-backup only applies to replacing the live database"),
        ("bad;name", True, True, "invalid database name 'bad;name'"),
    ],
)
def test_contradictory_requests_are_refused_with_one_line(target, confirm_live, safety_backup, message):
    with pytest.raises(UsageError) as refused:
        check_restore_request(target, "clicknback", confirm_live, safety_backup)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.exit_status == 2


def test_create_database_refusal_names_the_cause_and_both_fixes():
    message = create_database_refused_message("clicknback", "clicknback_verify_1a2b3c4d")
    assert message == (
        "cannot create database clicknback_verify_1a2b3c4d: role clicknback lacks the CREATEDB privilege; "
        'as the PostgreSQL superuser run `ALTER ROLE "clicknback" CREATEDB;` '
        "(e.g. sudo -u postgres psql -c 'ALTER ROLE \"clicknback\" CREATEDB'), "
        "or re-run `invoke provision --system`"
    )

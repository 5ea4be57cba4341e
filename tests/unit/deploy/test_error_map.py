"""One error map for every task: an expected failure is one `ERROR:` line and exit 1, whatever module raised it."""

from __future__ import annotations

import pytest
from invoke import Context, Exit, task

from deploy.errors import DeployError
from deploy.inventory import InventoryError
from deploy.ledger import LedgerError
from deploy.ssh import ConnectionFailed, HostKeyError, RemoteCommandError
from deploy.tasks import OperatorTask, operator_errors
from deploy.tasks.backup import BackupTaskError


def failing_task(error: BaseException) -> OperatorTask:
    @task
    def broken(c):
        """A task whose body fails the way a real one can."""
        raise error

    return OperatorTask.adopt(broken)


@pytest.mark.parametrize(
    "error",
    [
        DeployError("the lock is held by ops@laptop"),
        InventoryError("no environment named 'prod'"),
        LedgerError("the ledger line 3 is not JSON"),
        BackupTaskError("restore needs --target DB or --confirm-live"),
    ],
)
def test_each_expected_failure_is_one_error_line_and_exit_one(error):
    with pytest.raises(Exit) as raised:
        failing_task(error)(Context())
    assert raised.value.code == 1
    assert raised.value.message == f"ERROR: {error}"


def test_the_map_holds_every_toolkit_error_and_nothing_broader():
    errors = operator_errors()
    for kind in (ConnectionFailed, HostKeyError, RemoteCommandError, BackupTaskError, LedgerError, InventoryError):
        assert issubclass(kind, errors)
    assert not issubclass(RuntimeError, errors) and not issubclass(Exception, errors)


def test_a_programming_error_is_not_hidden_behind_a_one_liner():
    with pytest.raises(KeyError):
        failing_task(KeyError("bug"))(Context())

"""The drill's database stop and start run on this machine when the inventory says "local"."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deploy.drill import DrillFailed, database_control


def test_a_local_command_answers_with_its_output_or_itself():
    stop, start = database_control(None, "echo stopped", "true", "local", timeout=10)  # type: ignore[arg-type]
    assert stop() == "stopped"
    assert start() == "true"


def test_a_failing_local_command_names_its_exit_status_and_error():
    stop, _ = database_control(None, "echo 'no cluster here' >&2; exit 3", "true", "local", timeout=10)  # type: ignore[arg-type]
    with pytest.raises(DrillFailed, match="exited with 3: no cluster here"):
        stop()


def test_a_hanging_local_command_is_cut_at_the_drill_timeout(tmp_path):
    # Not exec'd: the shell's child holds the pipes too, and must be killed with it.
    marker = tmp_path / "child.pid"
    command = f"tail -f /dev/null & echo $! > {marker}; wait"
    stop, _ = database_control(None, command, "true", "local", timeout=1)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(DrillFailed, match="did not finish within 1s"):
        stop()
    assert time.monotonic() - started < 10
    child = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the child's exit, bounded
    assert not _running(child), "the shell's child outlived the timeout"


def _running(pid: int) -> bool:
    """Alive, not a zombie waiting for whoever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

"""deploy/ops/stamp.py as cron runs it: a real child process whose stdout and stderr lines land in
the log, each with its UTC time, and whose exit status the job keeps (`a && b` in the crontab)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STAMP = re.compile(rb"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z ")
CHILD = "import sys; print('to stdout', flush=True); print('to stderr', file=sys.stderr, flush=True); sys.exit(3)"


def stamp(log: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deploy.ops.stamp", str(log), *command],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


def test_every_line_is_appended_with_its_time_and_the_status_is_the_child_s(tmp_path):
    log = tmp_path / "cron.log"
    log.write_bytes(b"an older line\n")
    result = stamp(log, sys.executable, "-c", CHILD)
    assert result.returncode == 3 and result.stdout == b"" and result.stderr == b"", result
    lines = log.read_bytes().splitlines()
    assert lines[0] == b"an older line" and len(lines) == 3, lines
    assert all(STAMP.match(line) for line in lines[1:]), lines
    assert [STAMP.sub(b"", line) for line in lines[1:]] == [b"to stdout", b"to stderr"]


def test_a_command_that_cannot_start_is_a_stamped_line_and_127(tmp_path):
    log = tmp_path / "cron.log"
    result = stamp(log, str(tmp_path / "no-such-python"))
    assert result.returncode == 127, result
    (line,) = log.read_bytes().splitlines()
    assert STAMP.match(line) and b"cannot run" in line and b"no such file" in line.lower(), line

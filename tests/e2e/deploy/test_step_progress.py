"""A long remote step's output reaches the operator while the step runs (the venv build's progress),
over a real SSH connection to a sandbox host."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from deploy.progress import BUILDING, VenvProgress
from deploy.session import layout
from deploy.ssh import Remote

pytestmark = [pytest.mark.e2e]


def test_the_venv_build_s_lines_are_read_as_they_come(hosts):
    """The remote step cannot finish before the test saw its `Collecting` line: it waits (bounded)
    for a file the test creates only on that line, so passing proves the lines stream."""
    out = io.StringIO()
    remote = Remote(hosts[0], out=out)
    flag = Path(layout(remote).root) / "progress-test-flag"
    flag.unlink(missing_ok=True)
    command = (
        f"echo {BUILDING} && echo 'Collecting sanic==24.6.0 (from -r requirements.lock (line 1))'"
        f" && i=0; while [ ! -e {flag} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done;"
        f" [ -e {flag} ] && echo 'Successfully installed sanic-24.6.0' && echo venv-built"
    )

    def on_line(line: str) -> None:
        progress.feed(line)
        if line.startswith("Collecting "):
            flag.touch()

    try:
        with VenvProgress(remote.say, interval=60) as progress:
            result = remote.run(command, on_line=on_line)
    finally:
        remote.close()
        flag.unlink(missing_ok=True)
    assert result.ok and result.stdout.split()[-1] == "venv-built", result.stdout
    assert progress.collected == 1 and progress.finished
    assert "] building the venv (a new requirements.lock)" in out.getvalue()

"""What the tasks print, as another program reads it: every --json output is one JSON document on
stdout (json.load and jq both take it), and a reader that stops early (`| head`) gets no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def run(repo, deployed, *args: str, stdout=subprocess.PIPE, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLICKNBACK_INVENTORY": str(deployed.inventory_path)}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=repo.path,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args", [("backups", "--json"), ("stats", "--json", "--history", "HISTORY")], ids=lambda a: a[0]
)
def test_every_json_output_is_one_document_on_stdout(repo, deployed, tmp_path, args):
    args = tuple(str(tmp_path / "history.jsonl") if arg == "HISTORY" else arg for arg in args)
    result = run(repo, deployed, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert isinstance(document, dict) and document, result.stdout
    jq = subprocess.run(["jq", "-e", 'type == "object"'], input=result.stdout, capture_output=True, timeout=30)
    assert jq.returncode == 0 and jq.stdout.strip() == b"true", jq


@pytest.mark.parametrize("task", [("logs",), ("logs", "--follow"), ("health",), ("releases",)], ids=" ".join)
def test_a_reader_gone_before_the_first_line_gets_no_traceback(repo, deployed, task):
    reader, writer = os.pipe()
    os.close(reader)  # the reader has exited already: the task's first write to stdout fails
    try:
        result = run(repo, deployed, *task, stdout=writer, timeout=60)  # --follow stops too
    finally:
        os.close(writer)
    assert b"Traceback" not in result.stderr and b"BrokenPipeError" not in result.stderr, result.stderr.decode()
    assert result.returncode != 0  # it stopped (like a shell tool whose reader left), not ran on


@pytest.mark.parametrize("task", ["logs", "health", "releases"])
def test_piping_into_head_prints_the_first_line_and_no_traceback(repo, deployed, task):
    env = {**os.environ, "CLICKNBACK_INVENTORY": str(deployed.inventory_path)}
    result = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m invoke {task} | head -n 1'],
        cwd=repo.path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1, result
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr, result.stderr.decode()

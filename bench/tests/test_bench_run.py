"""A tiny bench run end to end: one cheap writing scenario, two passes of one second, with a
synchronous streaming standby, so the passes' summary and the standby mode are checked on the real
cluster, instances and nginx the bench always starts; and the same run stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import passes

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("nginx") is None, reason="needs wrk and nginx"),
]


def test_two_passes_on_a_synchronous_standby_print_each_pass_then_their_summary(tmp_path):
    figures = tmp_path / "figures.json"
    argv = [
        sys.executable,
        "-m",
        "bench.api_bench",
        "--scenario",
        "purchase_ingest",
        "--concurrency",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--passes",
        "2",
        "--standby",
        "sync",
        "--keep-autogroup",  # the machine's scheduler setting is not the test's to change
        "--json",
        str(figures),
    ]
    result = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("shape: "))
    assert header.endswith("; streaming standby, synchronous (each commit waits for the standby's flush)")
    # Each pass says which it is and how fast a core was just before it (bench/cpu.py).
    assert [line.split("; ")[0] for line in lines if line.startswith("pass ")] == ["pass 1 of 2", "pass 2 of 2"]
    assert all("core speed: a fixed single-core loop took " in line for line in lines if line.startswith("pass "))
    assert lines[-1].startswith("core speed over the passes: ")  # the summary's last line
    assert lines.count(next(line for line in lines if line.startswith("scenario "))) == 2  # a table per pass
    summary = lines[lines.index(passes.HEADER) + 1].split()
    assert summary[:3] == ["purchase_ingest", "4", "2"] and summary[7] == "0"  # both passes, no errors

    rows = json.loads(figures.read_text())
    assert [(row["scenario"], row["pass"], row["standby"]) for row in rows] == [
        ("purchase_ingest", 1, "sync"),
        ("purchase_ingest", 2, "sync"),
    ]
    # Every 201 waited for the standby's flush: it received and replayed the purchases meanwhile.
    assert all(row["errors"] == 0 and row["requests"] > 0 and row["standby_cpu_ms"] > 0 for row in rows)


def test_ctrl_c_during_the_run_stops_the_standby_and_everything_else(tmp_path):
    argv = [
        sys.executable,
        "-m",
        "bench.api_bench",
        "--scenario",
        "=purchase_ingest",
        "--concurrency",
        "4",
        "--duration",
        "30",
        "--warmup",
        "0",
        "--standby",
        "sync",
        "--keep-autogroup",
    ]
    bench = subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each line as printed: the test waits for one
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert bench.stdout is not None
        deadline = time.monotonic() + 120
        for line in bench.stdout:  # the header comes once the standby streams and the instances answer
            if line.startswith("scenario "):
                break
            assert time.monotonic() < deadline, "the bench never started measuring"
        bench.send_signal(signal.SIGINT)
        _, stderr = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    workdir = re.search(r"logs kept in (\S+)", stderr)
    assert workdir, stderr
    try:
        left = [
            entry.name
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and workdir[1].encode() in _cmdline(entry)
        ]
        assert left == [], f"processes of the stopped bench still run: {left}"
    finally:
        shutil.rmtree(workdir[1], ignore_errors=True)


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""  # gone meanwhile

"""The soak's report: one row per minute (the last one shorter), RSS per instance to a tenth of a MiB."""

from __future__ import annotations

import os
import re

from bench import soak


def test_minutes_are_whole_then_the_remainder():
    assert soak.minute_lengths(2.5) == [60, 60, 30]
    assert soak.minute_lengths(0.001) == [1]


def test_soak_reports_each_window_and_the_rss_of_each_instance():
    windows: list[int] = []

    def run_wrk(seconds: int) -> dict:
        windows.append(seconds)
        return {"rps": 1000.0 + seconds, "p50_us": 2000, "p99_us": 9000, "errors": 0}

    lines: list[str] = []
    pid = os.getpid()
    result = soak.soak(run_wrk, [pid], 1.25, emit=lines.append)
    assert windows == [60, 15]
    assert [row["minute"] for row in result["minutes"]] == [1, 2]
    assert result["rss_start_kib"][pid] > 0
    assert result["rps_spread"] == 0.0  # a window under 30 s does not count
    assert re.fullmatch(r"\s+1\s+1060\s+2\.00\s+9\.00\s+0  \d+\.\d", lines[2])
    assert re.search(r"RSS at end \(MiB\): \d+\.\d -> \d+\.\d; req/s per minute 1,060-1,060", lines[-1])


def test_a_gone_instance_says_so():
    assert soak._mib(None) == "gone"
    assert soak.rss_kib(2**22 + 12345) is None

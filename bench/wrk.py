"""wrk, the load generator: its command line, and one run's figures read back from its report line.
Each scenario is a Lua script; REPORT_LUA is appended so that wrk prints the figures as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

# A Lua postamble shared by every scenario: print the figures as one JSON line.
REPORT_LUA = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.status + summary.errors.timeout
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "p50_us": %d, "p99_us": %d, "errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), errors, summary.errors.status))
end
"""


def wrk_seconds(seconds: float) -> int:
    """wrk takes whole seconds; every run lasts at least one."""
    return max(1, round(seconds))


def wrk_argv(url: str, script: str, concurrency: int, seconds: float, threads: int = 1) -> list[str]:
    return [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{wrk_seconds(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        script,
        url,
    ]


def run_wrk(url: str, lua: str, concurrency: int, duration: float, threads: int = 1) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + "\n" + REPORT_LUA)
    try:
        result = subprocess.run(
            wrk_argv(url, script.name, concurrency, duration, threads),
            capture_output=True,
            text=True,
            timeout=wrk_seconds(duration) + 60,
        )
    finally:
        os.unlink(script.name)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH "):
            figures = json.loads(line[len("BENCH ") :])
            figures["rps"] = figures["requests"] / figures["seconds"] if figures["seconds"] else 0.0
            return figures
    raise RuntimeError(f"wrk gave no figures: {result.stdout}\n{result.stderr}")

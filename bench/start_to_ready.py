"""How long an instance takes from start to ready (issue #20: at most 1.5 s, so a rollback stays
within 5 s), run on demand:

    .venv/bin/python bench/start_to_ready.py [--starts 7] [--database-url URL]

Each start is `python -m server` as production runs it (the API bench's argv and environment,
bench/instances.py), timed from the process's creation to its first 200 from GET /health/ready,
polled every 10 ms; then the instance is stopped and the next one starts, one at a time. Without
--database-url a throwaway cluster (commits flushed, as production) is created and migrated first,
outside the timings. Prints each start, the median and the max against the bound, and the load
average, since on a shared machine the figures move with it; beside them the CPU seconds the
instance used until ready (from /proc), which other work on the machine moves much less.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.instances import PROJECT_ROOT, ready, server_argv, server_env, stop_process  # noqa: E402
from devtools.local_postgres import PRODUCTION_DURABILITY, LocalPostgres, free_port  # noqa: E402
from server import db_migrations  # noqa: E402

BOUND_SECONDS = 1.5
GIVE_UP_SECONDS = 30.0  # a start slower than this is a failure, not a figure
POLL_SECONDS = 0.01


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_one_start(database_url: str, log_dir: Path) -> tuple[float, float]:
    """Seconds from starting one instance to its first ready answer, and the CPU seconds it used
    until then; the instance is stopped after."""
    port = free_port()
    env = {**os.environ, **server_env(database_url, log_dir / f"app-{port}.log")}
    with (log_dir / f"server-{port}.out").open("wb") as output:
        started = time.monotonic()
        process = subprocess.Popen(server_argv(port), cwd=PROJECT_ROOT, env=env, stdout=output, stderr=output)
        try:
            while not ready(port, ""):
                if process.poll() is not None:
                    raise RuntimeError(f"the instance exited with {process.returncode}; see {log_dir}")
                if time.monotonic() - started > GIVE_UP_SECONDS:
                    raise RuntimeError(f"not ready after {GIVE_UP_SECONDS:.0f} s; see {log_dir}")
                time.sleep(POLL_SECONDS)  # the polling period of the ready condition
            return time.monotonic() - started, cpu_seconds(process.pid)
        finally:
            stop_process(process)


def measure(database_url: str, starts: int) -> list[tuple[float, float]]:
    with tempfile.TemporaryDirectory(prefix="cnb-start-to-ready-") as log_dir:
        return [time_one_start(database_url, Path(log_dir)) for _ in range(starts)]


def summary(starts: list[tuple[float, float]]) -> str:
    seconds = [wall for wall, _ in starts]
    median, worst = statistics.median(seconds), max(seconds)
    cpu = statistics.median(used for _, used in starts)
    verdict = "met" if worst <= BOUND_SECONDS else "NOT met"
    each = ", ".join(f"{s:.2f}" for s in seconds)
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    return (
        f"start to ready over {len(seconds)} starts: median {median:.2f} s, max {worst:.2f} s "
        f"(bound {BOUND_SECONDS} s: {verdict}); each: {each}; CPU until ready: median {cpu:.2f} s; "
        f"load average {load} on {os.cpu_count()} CPUs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--database-url", default="", help="a migrated database; default: a throwaway cluster")
    args = parser.parse_args()
    if args.starts < 1:
        parser.error("--starts must be at least 1")
    if args.database_url:
        print(summary(measure(args.database_url, args.starts)))
        return
    with tempfile.TemporaryDirectory(prefix="cnb-start-to-ready-pg-") as workdir:
        cluster = LocalPostgres(Path(workdir) / "pg")
        cluster.start(PRODUCTION_DURABILITY)
        try:
            cluster.create_database("ready")
            asyncio.run(db_migrations.upgrade(cluster.dsn("ready")))
            print(summary(measure(cluster.dsn("ready"), args.starts)))
        finally:
            cluster.destroy()


if __name__ == "__main__":
    main()

"""Pauses of the whole machine during a measured run: how late a top-priority watcher woke up.

At saturation, every request in flight waits through any pause of the machine. The host may
deschedule the whole VM, or a kernel thread on a non-preemptible kernel may keep a core. Neither
shows in `others` (no process of the machine used that time), yet a 30 ms pause puts 30 ms on
the p99 of a 5 s run. The watcher is a small process in SCHED_FIFO. It sleeps `PERIOD_S` at a
time and notes how late it woke. No normal-priority process (the service, nginx, wrk,
PostgreSQL) can delay it; only the kernel, interrupts and the host can. It is not free: each
wake-up preempts whatever runs. At 2 ms (500 a second), three interleaved pairs gave
`/health/live` 0.5-4.3 ms more p99 and `wallet_summary` 2.3-16.4 ms more. Hence 10 ms, and
`api_bench.py --stalls` only when asked: a pause of P ms still shows as at least P - 10.

Where SCHED_FIFO is refused (no root, no CAP_SYS_NICE), there is no figure. A watcher at normal
priority would only measure the bench's own load.

`Lateness` is pure (bench/tests/test_harness.py); `StallWatch` runs this file as the watcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

PERIOD_S = 0.010
STALL_MS = 10.0  # a wake-up this late counts as a stall


@dataclass
class Lateness:
    """The worst wake-up delay and the number of stalls since the last reset."""

    max_ms: float = 0.0
    stalls: int = 0

    def add(self, late_ms: float) -> None:
        if late_ms > self.max_ms:
            self.max_ms = late_ms
        if late_ms >= STALL_MS:
            self.stalls += 1

    def report(self) -> dict:
        return {"max_stall_ms": round(self.max_ms, 1), "stalls": self.stalls}


def watch() -> None:
    """The watcher process: answer `reset` and `report` lines on stdin while it measures."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(os.sched_get_priority_min(os.SCHED_FIFO)))
    except (AttributeError, OSError) as error:
        print(
            f"unavailable: SCHED_FIFO refused ({error.strerror if isinstance(error, OSError) else error})", flush=True
        )
        return
    lateness = Lateness()
    lock = threading.Lock()

    def serve_commands() -> None:
        nonlocal lateness
        for line in sys.stdin:
            with lock:
                if line.strip() == "reset":
                    lateness = Lateness()
                    print("ok", flush=True)
                elif line.strip() == "report":
                    print(json.dumps(lateness.report()), flush=True)
        os._exit(0)  # stdin closed: the bench is done

    threading.Thread(target=serve_commands, daemon=True).start()
    print("ready", flush=True)
    while True:
        started = time.monotonic()
        time.sleep(PERIOD_S)  # the measurement itself: how late this returns
        late_ms = (time.monotonic() - started - PERIOD_S) * 1000
        with lock:
            lateness.add(late_ms)


class StallWatch:
    """The watcher as a child process. `available` is False (and `note` says why) where the
    system refuses SCHED_FIFO; then `report()` is None."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdin is not None and self._process.stdout is not None  # both piped above
        self._to, self._from = self._process.stdin, self._process.stdout
        first = self._from.readline().strip()
        self.available = first == "ready"
        self.note = "" if self.available else (first or "unavailable: the watcher exited")

    def _ask(self, command: str) -> str:
        self._to.write(command + "\n")
        self._to.flush()
        return self._from.readline().strip()

    def reset(self) -> None:
        if self.available:
            self._ask("reset")

    def report(self) -> dict | None:
        return json.loads(self._ask("report")) if self.available else None

    def close(self) -> None:
        if self._process.stdin and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__":
    watch()

"""How much of the machine something other than the bench used during a measurement (Linux /proc).

The load average in the header says how busy the machine was before the run. This says how busy it
was *during* each measured run: the CPU time of every process minus the CPU time of the bench's own
processes (itself, wrk, the instances, nginx, and the PostgreSQL cluster's processes), as a share of
all the CPUs. A figure well above 0 means another program took CPU from the service under test, so
that row's req/s is low and its p99 is high for a reason that is not the service.

It also says what the machine is and how fast its cores are right now: the CPU model for the header,
and a fixed single-core loop timed before each pass, since a shared host's cores change speed.

Parsers are pure (tested with /proc text in bench/tests/test_harness.py); `snapshot` only reads.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def parse_machine_jiffies(proc_stat: str) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat's first line.

    Busy is user + nice + system + steal (a hypervisor giving our CPU to another guest is "others"
    too). Interrupt time is left out of busy: it cannot be told apart between the bench's loopback
    traffic and anyone else's, so counting it would blame others for the bench's own packets.
    """
    fields = proc_stat.splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError(f"not a /proc/stat cpu line: {fields[0]!r}")
    # user nice system idle iowait irq softirq steal; guest time is already inside user and nice.
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
    return user + nice + system + steal, user + nice + system + idle + iowait + irq + softirq + steal


def parse_process_stat(text: str) -> tuple[int, int]:
    """(ppid, jiffies) from /proc/<pid>/stat: own CPU time plus that of its reaped children.

    The command name sits in parentheses and may contain spaces, so fields are counted after the last ')'.
    Reaped children (a finished wrk, an exited backend) move their time into the parent's cutime/cstime,
    so counting it keeps their work on the bench's side of the ledger.
    """
    rest = text[text.rindex(")") + 2 :].split()
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(value) for value in rest[11:15])
    return ppid, utime + stime + cutime + cstime


def tree_jiffies(processes: dict[int, tuple[int, int]], roots: set[int]) -> int:
    """CPU jiffies of `roots` and all their descendants, from {pid: (ppid, jiffies)}."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = [pid for pid in roots if pid in processes]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(children.get(pid, []))
    return sum(processes[pid][1] for pid in seen)


def others_share(before: Snapshot, after: Snapshot, ours: str = "bench") -> float:
    """Share (0..1) of all CPUs used by processes outside the `ours` trees between two snapshots."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    others = (after.busy - before.busy) - (after.groups[ours] - before.groups[ours])
    return min(1.0, max(0.0, others / total))


def cpu_seconds(before: Snapshot, after: Snapshot, group: str, ticks_per_second: int) -> float:
    """CPU seconds the `group` trees used between two snapshots (all their cores together)."""
    return (after.groups[group] - before.groups[group]) / ticks_per_second


@dataclass(frozen=True)
class Snapshot:
    busy: int
    total: int
    groups: dict[str, int]


def snapshot(groups: dict[str, set[int]]) -> Snapshot | None:
    """The machine's jiffies and each group's trees' jiffies now; None without /proc (not Linux)."""
    try:
        busy, total = parse_machine_jiffies((PROC / "stat").read_text())
    except OSError:
        return None
    processes = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            try:
                processes[int(entry.name)] = parse_process_stat((PROC / entry.name / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return Snapshot(busy, total, {name: tree_jiffies(processes, roots) for name, roots in groups.items()})


def ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


# The machine's own speed, for comparing runs made at different times or on different VMs: the same
# service code gave `/health/live` 31,556 req/s and, two hours later on another VM of the same 2-CPU
# class, 15,588, with nothing else running. A shared host's cores change speed without any steal
# time showing, so each pass prints how long a fixed single-core workload took just before it. Anything
# else running then (work left over from setting up, say) slows it too, as it slows the first rows.
CORE_LOOP_ITERATIONS = 2_000_000
CORE_LOOP_TRIALS = 5


def model_name(cpuinfo: str) -> str | None:
    """The CPU's model from /proc/cpuinfo's first `model name` line, or None."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def machine_model() -> str | None:
    try:
        return model_name((PROC / "cpuinfo").read_text())
    except OSError:
        return None


def core_loop_ms() -> float:
    """Median milliseconds, over a few trials, of a fixed pure-Python loop on one core."""
    timings = []
    for _ in range(CORE_LOOP_TRIALS):
        started = time.perf_counter()
        total = 0
        for number in range(CORE_LOOP_ITERATIONS):
            total += number
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 1)


def core_loop_note(milliseconds: float) -> str:
    return f"core speed: a fixed single-core loop took {milliseconds:.0f} ms (lower is faster; compare runs by it)"

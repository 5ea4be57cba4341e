"""The soak (issue #24): the mixed load at concurrency 64 in production's shape for a bounded number
of minutes, one wrk run per minute back to back, reporting req/s and p99 per minute and each
instance's resident memory at the start and the end. Both must stay flat; a leak or a cost that
grows with the rows the soak itself ingests shows as a slope."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path


def rss_kib(pid: int) -> int | None:
    """VmRSS of one process in KiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def minute_lengths(minutes: float) -> list[int]:
    """Whole seconds of each run: full minutes, then the remainder (at least one second)."""
    total = max(1, round(minutes * 60))
    return [min(60, total - 60 * index) for index in range(math.ceil(total / 60))]


def soak(run_wrk: Callable[[int], dict], pids: list[int], minutes: float, emit: Callable[[str], None] = print) -> dict:
    """`run_wrk(seconds)` measures one window. Returns the per-minute rows and the RSS figures."""
    start_rss = {pid: rss_kib(pid) for pid in pids}
    emit(f"soak: {minutes:g} min; RSS at start (MiB): " + ", ".join(_mib(start_rss[pid]) for pid in pids))
    emit(f"{'minute':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  RSS MiB per instance")
    rows = []
    for index, seconds in enumerate(minute_lengths(minutes), start=1):
        figures = run_wrk(seconds)
        rss_now = {pid: rss_kib(pid) for pid in pids}
        rows.append({**figures, "minute": index, "seconds": seconds, "rss_kib": rss_now})
        emit(
            f"{index:>6} {figures['rps']:>9.0f} {figures['p50_us'] / 1000:>8.2f} {figures['p99_us'] / 1000:>8.2f} "
            f"{figures['errors']:>7}  " + ", ".join(_mib(rss_now[pid]) for pid in pids)
        )
    end_rss = {pid: rss_kib(pid) for pid in pids}
    rates = [row["rps"] for row in rows if row["seconds"] >= 30] or [row["rps"] for row in rows]
    spread = (max(rates) - min(rates)) / max(rates) if rates and max(rates) else 0.0
    emit(
        "soak: RSS at end (MiB): "
        + ", ".join(f"{_mib(start_rss[pid])} -> {_mib(end_rss[pid])}" for pid in pids)
        + f"; req/s per minute {min(rates):,.0f}-{max(rates):,.0f} (spread {spread:.0%} of the best)"
    )
    return {"minutes": rows, "rss_start_kib": start_rss, "rss_end_kib": end_rss, "rps_spread": spread}


def _mib(kib: int | None) -> str:
    return "gone" if kib is None else f"{kib / 1024:.1f}"  # a tenth: a slope of 0.1 MiB a minute shows

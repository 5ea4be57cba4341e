"""One measured run: the warm-up, the background load a scenario needs, wrk's figures, and the CPU
each part of the service used meanwhile (from /proc)."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

from bench import cpu
from bench.front import NginxFront
from bench.instances import stop_process
from bench.scenarios import BACKGROUND_LOAD, Context, Scenario, scenarios, target_verdict
from bench.stalls import StallWatch
from bench.wrk import run_wrk, wrk_argv
from devtools.local_postgres import LocalPostgres

CPU_PARTS = ("service", "app", "nginx", "postgres")


def cpu_figures(before: cpu.Snapshot | None, after: cpu.Snapshot | None, requests: int) -> dict:
    """others_cpu: share of all CPUs used outside the bench; service_cpu_ms: CPU ms per request of the
    instances, nginx and PostgreSQL together (wrk excluded), then of each part. None without /proc."""
    if before is None or after is None:
        return {"others_cpu": None, **{f"{part}_cpu_ms": None for part in CPU_PARTS}}
    ticks = cpu.ticks_per_second()
    per_request = {
        f"{part}_cpu_ms": round(cpu.cpu_seconds(before, after, part, ticks) * 1000 / requests, 3) if requests else None
        for part in (*CPU_PARTS, "standby")
        if part in before.groups
    }
    return {"others_cpu": round(cpu.others_share(before, after, "bench"), 3), **per_request}


def bench_cpu_groups(
    cluster: LocalPostgres,
    servers: list[tuple[subprocess.Popen, int]],
    front: NginxFront | None,
    replica: LocalPostgres | None = None,
) -> dict[str, set[int]]:
    """The process trees cpu.snapshot sums, by group.

    "bench" is everything we started (this process and so wrk, the instances and nginx, plus the
    detached PostgreSQL clusters); "service" is what production would run on the app's host; then
    each part of it; "standby" (with --standby) the standby's cluster, another host in production."""
    postmaster = cluster_postmaster_pid(cluster)
    nginx = {front.process.pid} if front is not None and front.process is not None else set()
    app = {process.pid for process, _ in servers}
    groups = {
        "bench": {os.getpid(), postmaster},
        "service": app | nginx | {postmaster},
        "app": app,
        "nginx": nginx,
        "postgres": {postmaster},
    }
    if replica is not None:
        groups["standby"] = {cluster_postmaster_pid(replica)}
        groups["bench"] |= groups["standby"]
    return groups


def cluster_postmaster_pid(cluster: LocalPostgres) -> int:
    """pg_ctl detaches the postmaster from us; its pid file's first line names it."""
    return int((cluster.data_dir / "postmaster.pid").read_text().split()[0])


def wait_until_quiet(
    cpu_groups: dict[str, set[int]], busy_share: float = 0.05, window: float = 0.25, limit: float = 30.0
) -> float:
    """Wait until the instances use less than `busy_share` of one CPU over `window` seconds (at most
    `limit` seconds); returns the seconds waited."""
    ticks = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu.snapshot(cpu_groups)
        time.sleep(window)  # the sampling window of the measurement, not a wait for an event
        after = cpu.snapshot(cpu_groups)
        if before is None or after is None or cpu.cpu_seconds(before, after, "app", ticks) < busy_share * window:
            break
    return time.monotonic() - started


def measure(
    url: str,
    ctx: Context,
    scenario: Scenario,
    level: int,
    args: argparse.Namespace,
    cpu_groups: dict[str, set[int]],
    stalls: StallWatch | None = None,
) -> dict:
    """Warm up (figures discarded), then measure one scenario at one concurrency level."""
    # What the scenarios before this one wrote (chiefly ~300 bytes of log per request, twice) is
    # still in the page cache; the kernel writes it back later, in some later scenario's
    # measurement, and that writeback can pause the whole machine (the stall column). Flushed
    # here, each row measures its own scenario, as when it runs alone (docs/benchmarks.md).
    os.sync()
    warmup = args.warmup
    flood: subprocess.Popen | None = None
    flood_script = ""
    if scenario.name in BACKGROUND_LOAD:
        # The flood runs through warm-up and measurement; the warm-up (at least 1 s here) is also the
        # flood's ramp to steady state, so the measurement never starts on an idle server.
        warmup = max(warmup, 1)
        background, background_level = BACKGROUND_LOAD[scenario.name]
        load = next(s for s in scenarios(ctx) if s.name == background)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as flood_file:
            flood_file.write(load.lua)
        flood_script = flood_file.name
        flood = subprocess.Popen(
            wrk_argv(url, flood_script, background_level, warmup + args.duration + 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        if warmup:
            run_wrk(url, scenario.lua, level, warmup)
        if stalls is not None:
            stalls.reset()
        before = cpu.snapshot(cpu_groups)
        figures = run_wrk(url, scenario.lua, level, args.duration)
        after = cpu.snapshot(cpu_groups)
        pauses = stalls.report() if stalls is not None else None
    finally:
        if flood is not None:
            stop_process(flood, timeout=10)
            os.unlink(flood_script)
            # Logins the flood left queued keep hashing after wrk stops; the next scenario must
            # not measure them (they would inflate its p99).
            wait_until_quiet(cpu_groups)
    target = target_verdict(scenario.name, level, figures)
    figures.update(cpu_figures(before, after, figures["requests"]))
    figures.update(pauses or {"max_stall_ms": None, "stalls": None})
    return {
        **figures,
        "scenario": scenario.name,
        "concurrency": level,
        "issue": scenario.issue,
        "target": target,
        "target_met": None if not target else target.endswith(": met"),
    }

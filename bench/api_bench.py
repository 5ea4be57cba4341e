"""API benchmark: the service as production runs it, against a real PostgreSQL with the demo seed.

    python bench/api_bench.py [--scenario NAME] [--duration 5] [--warmup 1] [--concurrency 16,64]
                              [--instances 2] [--direct] [--upstream-keepalive 0]
                              [--instances-over unix|tcp] [--database-over socket|tcp] [--passes N]
                              [--json FILE] [--data-size small|large|both] [--plans]
                              [--soak [--minutes 10]] [--standby none|async|sync]

Starts a throwaway PostgreSQL cluster, migrates it, loads the demo seed, starts `python -m server`
instance(s) on loopback and, by default, nginx in front of them with the production configuration
(two single-process instances behind nginx, as on the 2-core VPS; see bench/front.py). Each
scenario and concurrency level is first warmed up with the same wrk script (figures discarded), then
measured with wrk (C, so the load generator takes as little of the 2 cores as possible), printing
requests/s, p50, p99, errors and, where an issue sets one, whether the target is met. Every run is
bounded: `warmup` + `duration` seconds per scenario and level. `--instances 1 --direct` points wrk
straight at one instance (no nginx), for profiling. Run it on an idle machine: the header prints
the load average at start so a reader can tell. docs/benchmarks.md explains the figures.

Data scale (issue #24): `--data-size large` runs on 10 million purchases (bench/data_size.py,
generated once and cached), `both` runs every selected scenario at each size and prints the ratios;
the job-backlog run (bench/backlog.py) ends each size; `--soak` replaces the scenarios with a long
mixed run (bench/soak.py); `--plans` saves the list endpoints' query plans (bench/plans.py).
`--standby async|sync` gives the cluster a streaming standby first (bench/standby.py, issue #25).

This file holds the options and the order of a run. The scenarios and targets are in
bench/scenarios.py, the instances and nginx in bench/instances.py, one measured run in
bench/measure.py, wrk's command line in bench/wrk.py, and what is printed in bench/table.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench import backlog, cpu, data_size, passes, plans, scale_scenarios, soak, standby  # noqa: E402
from bench.front import NginxFront  # noqa: E402
from bench.instances import (  # noqa: E402
    instance_database_url,
    instance_sockets,
    instance_transport,
    server_env,
    start_front,
    start_servers,
    stop_process,
    tear_down_servers,
)
from bench.kernel import production_scheduler  # noqa: E402
from bench.measure import bench_cpu_groups, measure  # noqa: E402
from bench.scenarios import SHOPLY, Context, prepare, scenario_selected, scenarios  # noqa: E402
from bench.stalls import StallWatch  # noqa: E402
from bench.table import TABLE_HEADER, ratio_table, row_line, shape_line  # noqa: E402
from bench.wrk import REPORT_LUA, run_wrk, wrk_argv, wrk_seconds  # noqa: E402
from datascale import options as scale_options  # noqa: E402
from deploy.commands import UPSTREAM_KEEPALIVE, postgres_memory  # noqa: E402
from deploy.inventory import HOST_DEFAULTS, INSTANCE_LISTEN  # noqa: E402
from devtools.local_postgres import PRODUCTION_DURABILITY, LocalPostgres  # noqa: E402


def add_instances_over_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instances-over",
        choices=INSTANCE_LISTEN,
        default=HOST_DEFAULTS["instance_listen"],
        help="how nginx reaches the instances: a Unix socket each (the default, as production's "
        "inventory instance_listen) or loopback TCP; --direct always uses TCP",
    )


def add_database_over_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-over",
        choices=("socket", "tcp"),
        default="socket",
        help="how the instances reach PostgreSQL: its Unix socket (the default, as docs/deploy.md "
        "recommends when PostgreSQL runs on the app's host) or loopback TCP",
    )


def add_keep_autogroup_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-autogroup",
        action="store_true",
        help="leave the kernel's scheduler autogroup as "
        "the machine has it; by default a run as root turns it off for its duration, as "
        "provision --system does on production's hosts (bench/kernel.py)",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario",
        default="",
        help="only scenarios whose name contains this; several "
        "comma-separated parts select every scenario that contains any of them, in the usual order; "
        "=NAME selects that scenario alone",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="measured seconds per scenario and level (whole seconds, at least 1)",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of discarded load before each measurement (0 = none)"
    )
    parser.add_argument("--concurrency", default="16,64", help="comma-separated connection counts")
    parser.add_argument("--instances", type=int, default=2, help="server processes (default 2, as production)")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="no nginx: wrk straight at the single instance (needs --instances 1; for profiling)",
    )
    parser.add_argument(
        "--upstream-keepalive",
        type=int,
        default=0,
        help="experiment: idle connections nginx "
        f"keeps to each instance (default 0: production's own keepalive {UPSTREAM_KEEPALIVE})",
    )
    add_instances_over_option(parser)
    add_database_over_option(parser)
    parser.add_argument(
        "--stalls",
        action="store_true",
        help="fill the stall column: the machine's longest "
        "pause per run, from a SCHED_FIFO watcher waking every 10 ms (needs root; its own wake-ups "
        "raise the p99 it sits beside, so it is off by default)",
    )
    parser.add_argument(
        "--passes",
        "--repeat",
        dest="passes",
        type=int,
        default=1,
        metavar="N",
        help="run the selected scenarios N times back to back on the same cluster and servers (nothing "
        "reset: rows ingested by pass 1 are there in pass N), then per scenario and level the median "
        "and range of req/s and p99, the change from the first pass to the last (a fall of req/s "
        "beyond 10%% flagged) and how many passes met the target (bench/passes.py)",
    )
    add_keep_autogroup_option(parser)
    parser.add_argument(
        "--standby",
        choices=standby.MODES,
        default="none",
        help="give the cluster a streaming standby (a second local cluster, built as `invoke standby` "
        "builds one): async, or sync as `invoke standby --synchronous` (each commit waits for it)",
    )
    parser.add_argument("--json", dest="json_out", default="", help="also write the figures to this JSON file")
    scale_options.add_options(parser)
    # Not an option: --alternate's rounds turn the job backlog off in all but the last (main).
    parser.set_defaults(backlog=True)
    args = parser.parse_args(argv)
    scale_options.check(args, parser)
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    if args.direct and args.instances != 1:
        parser.error("--direct measures one instance: use it with --instances 1")
    if args.direct and args.upstream_keepalive:
        parser.error("--upstream-keepalive applies to nginx, not to --direct")
    args.warmup = wrk_seconds(args.warmup) if args.warmup > 0 else 0
    args.duration = wrk_seconds(args.duration)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (timeout, CI cancel) unwinds like Ctrl-C, so `finally` stops everything we started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load_at_start = os.getloadavg()  # before our own set-up adds load
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not args.direct and not os.path.exists(nginx_binary):
        print("nginx is not installed: apt-get install -y nginx-light (or use --instances 1 --direct)", file=sys.stderr)
        return 2
    levels = [int(part) for part in args.concurrency.split(",") if part.strip()]
    shape = {
        "instances": args.instances,
        "front": "direct" if args.direct else "nginx",
        "upstream_keepalive": 0 if args.direct else args.upstream_keepalive,
        "cpus": os.cpu_count(),
        "cpu_model": cpu.machine_model(),
        "load_average_at_start": [round(value, 2) for value in load_at_start],
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "database_over": args.database_over,
        "instances_over": instance_transport(args),
        "standby": args.standby,
        # PostgreSQL's memory is what `provision --system` would set on a host with this RAM.
        "ram_kb": postgres_memory.host_ram_kb(),
    }
    with production_scheduler(keep=args.keep_autogroup) as scheduler:
        by_size: dict[str, list[dict]] = {}
        for round_, size, with_backlog in scale_options.rounds(args):
            once = args
            if round_:
                print(f"round {round_} of {args.passes}: {size} data", flush=True)
                once = argparse.Namespace(**{**vars(args), "passes": 1, "backlog": with_backlog})
            rows = run(once, {**shape, "scheduler": scheduler, "data_size": size}, levels, nginx_binary)
            by_size.setdefault(size, []).extend(
                {**row, "pass": round_} if round_ and "pass" in row else row for row in rows
            )
    if args.alternate:
        for size, rows in by_size.items():
            print(f"\n{size} data, over the rounds (each on a fresh cluster)")
            print("\n".join(passes.summary(rows)))
    if len(by_size) > 1:
        print("\n".join(ratio_table(by_size["small"], by_size["large"])))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([row for rows in by_size.values() for row in rows], indent=2))
    return 0


@dataclass
class Service:
    """The instances and nginx now running, so that `finally` stops whatever is up when a step fails."""

    servers: list[tuple[subprocess.Popen, int]] = field(default_factory=list)
    front: NginxFront | None = None


def run(args: argparse.Namespace, shape: dict, levels: list[int], nginx_binary: str) -> list[dict]:
    """Set up PostgreSQL, the instances and nginx, measure every selected scenario, tear down."""
    workdir = Path(tempfile.mkdtemp(prefix="cnb-bench-"))
    os.chmod(workdir, 0o755)
    large = shape["data_size"] == "large"
    cluster = data_size.cluster_from_cache(workdir / "pg") if large else LocalPostgres(workdir / "pg")
    service = Service()
    stalls: StallWatch | None = None
    replica: LocalPostgres | None = None
    results = []
    finished = False
    try:
        cluster.start(f"{PRODUCTION_DURABILITY} {postgres_memory.server_options(shape['ram_kb'])}")
        if not large:  # the cached cluster has it, generated
            cluster.create_database("bench")
        database_url = cluster.dsn("bench")  # migrations, seed and set-up
        import asyncio

        from server import db_migrations
        from server.seed import load_demo_seed

        asyncio.run(db_migrations.upgrade(database_url))
        asyncio.run(load_demo_seed(database_url))
        replica = standby.start(cluster, workdir / "standby", args.standby)
        service.servers = servers = start_servers(
            instance_database_url(cluster, "bench", args.database_over),
            args.instances,
            workdir,
            socket_for=instance_sockets(workdir, instance_transport(args)),
        )
        url, service.front = start_front(servers, args, workdir, nginx_binary)
        ctx = prepare(url, database_url)
        cpu_groups = bench_cpu_groups(cluster, servers, service.front, replica)
        stalls = StallWatch() if args.stalls else None
        print(shape_line(shape))
        if stalls is not None and not stalls.available:
            print(f"stall column empty: {stalls.note}")
        if args.soak:
            mixed = next(s for s in scenarios(ctx) if s.name == "mixed")
            results.append(
                soak.soak(
                    lambda seconds: run_wrk(url, mixed.lua, 64, seconds), [p.pid for p, _ in servers], args.minutes
                )
            )
            finished = True
            return results
        for run in range(1, args.passes + 1):
            core_loop_ms = cpu.core_loop_ms()
            speed = cpu.core_loop_note(core_loop_ms)
            print(f"pass {run} of {args.passes}; {speed}" if args.passes > 1 else speed)
            print(TABLE_HEADER)
            for scenario in scenarios(ctx):
                if not scenario_selected(scenario.name, args.scenario):
                    continue
                for level in scenario.levels or levels:
                    measured = measure(url, ctx, scenario, level, args, cpu_groups, stalls)
                    results.append({**measured, "pass": run, "core_loop_ms": core_loop_ms})
                    print(row_line(results[-1]), flush=True)
        if args.passes > 1:
            print("\n".join(passes.summary(results)))
        results = [{**shape, **row} for row in results]
        if args.plans:
            save_plans(cluster, database_url, ctx, workdir, shape["data_size"])
        if args.backlog and scenario_selected("job_backlog", args.scenario):
            row = job_backlog(args, service, cluster, database_url, ctx, workdir, nginx_binary)
            results.append({**shape, **row, "scenario": "job_backlog", "concurrency": 64})
        finished = True
    finally:
        if stalls is not None:
            stalls.close()
        if replica is not None:
            replica.destroy()
        tear_down(service.front, service.servers, cluster, workdir, finished)
    return results


def job_backlog(
    args: argparse.Namespace,
    service: Service,
    cluster: LocalPostgres,
    database_url: str,
    ctx: Context,
    workdir: Path,
    nginx_binary: str,
) -> dict:
    """The verification job's backlog (bench/backlog.py), run last: it adds 100,000 purchases. The
    instances restart with the job on, as production runs them, and the mix runs meanwhile."""
    if service.front is not None:
        service.front.stop()
        service.front = None
    tear_down_servers(service.servers)

    def with_job(url: str, log: Path) -> dict[str, str]:
        return {**server_env(url, log), **backlog.JOB_ENV}

    instances_url = instance_database_url(cluster, "bench", args.database_over)
    # The job first goes through what the scenarios ingested while it was off: all of it is due.
    service.servers = start_servers(instances_url, args.instances, workdir, env=with_job)
    try:
        first, left, catch_up_s = backlog.catch_up(database_url)
    finally:
        tear_down_servers(service.servers)
    caught = f"{first - left:,} purchases the scenarios left due, in {catch_up_s:.1f} s"
    caught += f" ({left:,} still due)" if left else ""
    print(f"job backlog: first the job went through {caught}", flush=True)
    prefix, insert_s = backlog.insert(database_url, ctx.tokens["heavy_id"], SHOPLY)
    due = backlog.due(database_url)
    job_started = time.monotonic()
    service.servers = start_servers(
        instances_url,
        args.instances,
        workdir,
        env=with_job,
        socket_for=instance_sockets(workdir, instance_transport(args)),
    )
    url, service.front = start_front(service.servers, args, workdir, nginx_binary)
    mixed = next(s for s in scenarios(ctx) if s.name == "mixed")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(mixed.lua + "\n" + REPORT_LUA)
    try:
        argv = wrk_argv(url, script.name, 64, backlog.LIMIT_SECONDS + 60)
        row = backlog.clear(database_url, argv, ctx.tokens["heavy_id"], prefix, job_started)
    finally:
        os.unlink(script.name)
    row.update(backlog=backlog.BACKLOG, insert_s=insert_s, due=due)
    print(backlog.line(row), flush=True)
    return row


def save_plans(cluster: LocalPostgres, database_url: str, ctx: Context, workdir: Path, size: str) -> None:
    """--plans: the list endpoints' query plans, from one extra instance (bench/plans.py)."""
    log_dir = workdir / "plans"
    log_dir.mkdir(exist_ok=True)

    def start_instance() -> tuple[subprocess.Popen, str]:
        ((process, port),) = start_servers(database_url, 1, log_dir)
        return process, f"http://127.0.0.1:{port}"

    requests = [(name, path, ctx.tokens[token]) for name, path, token in scale_scenarios.specs()] + [
        ("user_wallet_transactions", "/api/v1/users/me/wallet/transactions?limit=10", ctx.tokens["heavy"])
    ]
    text = plans.capture(lambda sql: cluster.psql(sql), cluster.log_file, start_instance, stop_process, requests)
    out = PROJECT_ROOT / "bench" / "results" / f"plans-{size}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"plans: {out}", flush=True)


def tear_down(
    front: NginxFront | None,
    servers: list[tuple[subprocess.Popen, int]],
    cluster: LocalPostgres,
    workdir: Path,
    finished: bool,
) -> None:
    """Stop nginx, the instances and the database; keep the logs of a run that failed."""
    if front is not None:
        front.stop()
    tear_down_servers(servers)
    cluster.destroy()
    if finished:
        shutil.rmtree(workdir, ignore_errors=True)
    else:  # the instances' and nginx's logs say why; the database is gone either way
        print(f"bench failed or was stopped; logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

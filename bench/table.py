"""What the API bench prints: the header naming the shape and the machine, one line per measured
run, and the small-against-large ratios of issue #24."""

from __future__ import annotations

from statistics import median

from bench import standby
from deploy.commands import UPSTREAM_KEEPALIVE, postgres_memory
from deploy.inventory import HOST_DEFAULTS


def shape_line(shape: dict) -> str:
    """The header: what was measured, on what, and how busy the machine was when the bench started."""
    if shape["front"] == "nginx":
        keepalive = shape["upstream_keepalive"]
        differences = [f"upstream keepalive {keepalive}"] if keepalive and keepalive != UPSTREAM_KEEPALIVE else []
        if shape["instances_over"] != HOST_DEFAULTS["instance_listen"]:
            differences.append(f"instances over {shape['instances_over']}")
        front = (
            f"behind nginx ({', '.join(differences)}, NOT as production)"
            if differences
            else "behind nginx (production config)"
        )
    else:
        front = "wrk direct, no nginx (profiling shape, not production)"
    load = " ".join(f"{value:.2f}" for value in shape["load_average_at_start"])
    warmup = f"after a {shape['warmup_s']}s warm-up" if shape["warmup_s"] else "no warm-up"
    database = (
        "PostgreSQL over its Unix socket" if shape["database_over"] == "socket" else "PostgreSQL over loopback TCP"
    ) + ", commits flushed to disk (as production)"
    if "ram_kb" in shape:
        buffers = postgres_memory.memory_settings(shape["ram_kb"])["shared_buffers"]
        database += f", shared_buffers {buffers // 1024} MB (as provision sizes it)"
    return (
        f"shape: {shape['instances']} instance(s) {front}; {database}; {shape['cpus']} CPUs"
        + (f" ({shape['cpu_model']})" if shape.get("cpu_model") else "")
        + "; "
        f"{shape['scheduler']}; load average at start {load}; {shape['duration_s']}s per run, {warmup}"
        + ("" if shape.get("data_size", "small") == "small" else f"; data size {shape['data_size']}")
        + (f"; {standby.label(shape['standby'])}" if shape.get("standby", "none") != "none" else "")
    )


TABLE_HEADER = (
    f"{'scenario':34} {'conc':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
    f"{'cpu/req':>8} {'others':>7} {'stall':>6}  target"
)


def row_line(row: dict) -> str:
    """One measured run. cpu/req: CPU ms per request of instances + nginx + PostgreSQL; others: share
    of all CPUs that processes outside the bench used meanwhile; stall: the machine's longest pause
    (bench/stalls.py), in whole ms."""
    cpu_ms = "-" if row.get("service_cpu_ms") is None else f"{row['service_cpu_ms']:.3f}"
    others = "-" if row.get("others_cpu") is None else f"{row['others_cpu']:.0%}"
    stall = "-" if row.get("max_stall_ms") is None else f"{row['max_stall_ms']:.0f}"
    return (
        f"{row['scenario']:34} {row['concurrency']:>5} {row['rps']:>9.0f} {row['p50_us'] / 1000:>8.2f} "
        f"{row['p99_us'] / 1000:>8.2f} {row['errors']:>7} {cpu_ms:>8} {others:>7} {stall:>6}  "
        f"{row['target']}"
    ).rstrip()


def ratio_table(small: list[dict], large: list[dict]) -> list[str]:
    """Per scenario and level, the medians over the passes at each size and large/small. Issue #24:
    at 10 million purchases every scenario stays within 20% of its small-data req/s (ratio >= 0.80)."""

    def medians(rows: list[dict]) -> dict[tuple[str, int], tuple[float, float]]:
        runs: dict[tuple[str, int], list[dict]] = {}
        for row in rows:
            if "scenario" in row and "concurrency" in row:
                runs.setdefault((row["scenario"], row["concurrency"]), []).append(row)
        return {
            key: (median(r["rps"] for r in group), median(r["p99_us"] / 1000 for r in group))
            for key, group in runs.items()
        }

    before, after = medians(small), medians(large)
    lines = [
        f"{'small vs large data':34} {'conc':>5} {'req/s small':>12} {'req/s large':>12} {'ratio':>6} "
        f"{'p99 ms small':>13} {'p99 ms large':>13}  within 20%"
    ]
    for key, (rps_small, p99_small) in before.items():
        if key not in after:
            continue
        rps_large, p99_large = after[key]
        ratio = rps_large / rps_small if rps_small else 0.0
        lines.append(
            f"{key[0]:34} {key[1]:>5} {rps_small:>12,.0f} {rps_large:>12,.0f} {ratio:>6.2f} "
            f"{p99_small:>13.2f} {p99_large:>13.2f}  {'yes' if ratio >= 0.8 else 'NO'}"
        )
    return lines

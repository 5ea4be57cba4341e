"""`--passes N`: the selected scenarios N times back to back on the same cluster and servers, then one
summary line per scenario and concurrency level (issue #24: "four consecutive passes show no decline").

Nothing is reset between passes, so what pass 1 ingested is still there in pass N: a cost that grows
with the rows shows as a fall from the first pass to the last. Pure (bench/tests/test_passes.py).
"""

from __future__ import annotations

from statistics import median

# A fall of req/s from the first pass to the last beyond this share is flagged. Passes of the same
# code on the shared 2-core machine spread by about this much (docs/benchmarks.md), so a smaller
# fall is not told apart from noise.
DECLINE_SHARE = 0.10

HEADER = (
    f"{'over the passes':34} {'conc':>5} {'passes':>6} {'req/s median [min-max]':>26} "
    f"{'p99 ms median [min-max]':>28} {'errors':>7} {'req/s 1st->last':>16} {'p99 1st->last':>14}  verdict"
)


def change(first: float, last: float) -> float | None:
    """(last - first) / first, or None when the first is 0 (nothing to compare with)."""
    return (last - first) / first if first else None


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:+.0%}"


def figures(rows: list[dict], decline_share: float = DECLINE_SHARE) -> list[dict]:
    """Per scenario and level measured in at least one pass, in the order first measured: the passes,
    req/s and p99 (ms) as median, min and max, the change of each from the first pass to the last,
    whether req/s fell by more than `decline_share`, and how many passes met the issue's target
    (None where no target applies)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        if "pass" in row and "rps" in row and "p99_us" in row:
            groups.setdefault((row["scenario"], row["concurrency"]), []).append(row)
    out = []
    for (name, level), group in groups.items():
        group = sorted(group, key=lambda row: row["pass"])
        rps = [row["rps"] for row in group]
        p99 = [row["p99_us"] / 1000 for row in group]
        rps_change = change(rps[0], rps[-1]) if len(group) > 1 else None
        nginx_first, nginx_last = group[0].get("nginx_cpu_ms"), group[-1].get("nginx_cpu_ms")
        out.append(
            {
                "scenario": name,
                "concurrency": level,
                "passes": len(group),
                "rps": (median(rps), min(rps), max(rps)),
                "p99_ms": (median(p99), min(p99), max(p99)),
                "errors": sum(row.get("errors", 0) for row in group),
                "rps_change": rps_change,
                "p99_change": change(p99[0], p99[-1]) if len(group) > 1 else None,
                "decline": rps_change is not None and rps_change < -decline_share,
                # nginx does the same work for each request of a scenario in every pass, so its CPU per
                # request moves mostly with the cores' speed, measured during the row itself. It also
                # rises a little when fewer requests arrive per wake-up, so it hints; it does not prove.
                "nginx_change": change(nginx_first, nginx_last)
                if len(group) > 1 and nginx_first and nginx_last
                else None,
                "target_met": sum(1 for row in group if row.get("target_met")) if group[0].get("target") else None,
            }
        )
    return out


def summary(rows: list[dict], decline_share: float = DECLINE_SHARE) -> list[str]:
    """The table printed after the passes, from `figures`. p99's change is shown, not judged: a
    5-second run's p99 moves by more than 10% between passes of the same code."""
    lines = [HEADER]
    for item in figures(rows, decline_share):
        rps, p99 = item["rps"], item["p99_ms"]
        verdict = [f"DECLINE beyond {decline_share:.0%}"] if item["decline"] else []
        if item["decline"] and item["nginx_change"] is not None:
            verdict[0] += f" (nginx's CPU per request {_percent(item['nginx_change'])} meanwhile)"
        if item["target_met"] is not None:
            verdict.append(f"target met {item['target_met']} of {item['passes']}")
        line = (
            f"{item['scenario']:34} {item['concurrency']:>5} {item['passes']:>6} "
            f"{f'{rps[0]:,.0f} [{rps[1]:,.0f}-{rps[2]:,.0f}]':>26} "
            f"{f'{p99[0]:.2f} [{p99[1]:.2f}-{p99[2]:.2f}]':>28} {item['errors']:>7} "
            f"{_percent(item['rps_change']):>16} {_percent(item['p99_change']):>14}  " + "; ".join(verdict)
        )
        lines.append(line.rstrip())
    if len(lines) == 1:
        lines.append("no scenario was measured")
    speed = core_speed_line(rows)
    return lines + ([speed] if speed else [])


def core_speed_line(rows: list[dict]) -> str | None:
    """The fixed single-core loop's time before each pass (bench/cpu.py) and its change from the first
    pass to the last: when the host's cores slowed by as much as a row fell, the fall is the host's."""
    by_pass = {row["pass"]: row["core_loop_ms"] for row in rows if "pass" in row and "core_loop_ms" in row}
    if len(by_pass) < 2:
        return None
    timings = [by_pass[number] for number in sorted(by_pass)]
    slower = change(timings[0], timings[-1])
    return (
        f"core speed over the passes: {', '.join(f'{value:.0f}' for value in timings)} ms for the fixed loop "
        f"({_percent(slower)} from the first pass to the last; higher is slower)"
    )

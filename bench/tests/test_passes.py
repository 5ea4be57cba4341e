"""`--passes N`'s summary (bench/passes.py): medians and ranges over the passes, the change from the
first pass to the last, a fall beyond 10% flagged, and the target count where a target applies."""

from __future__ import annotations

from bench import passes, scenarios


def row(scenario: str, level: int, rps: float, p99_ms: float, run: int, errors: int = 0) -> dict:
    figures = {"rps": rps, "p50_us": 1500, "p99_us": int(p99_ms * 1000), "errors": errors, "requests": 100}
    target = scenarios.target_verdict(scenario, level, figures)
    return {
        **figures,
        "scenario": scenario,
        "concurrency": level,
        "pass": run,
        "target": target,
        "target_met": None if not target else target.endswith(": met"),
    }


# Four passes in the order the bench measures them (each pass: every scenario, every level).
ROWS = [
    row("users_me", 16, 4000, 9, 1),
    row("users_me", 64, 5126, 32.78, 1),
    row("mixed", 64, 2638, 51.47, 1),
    row("users_me", 16, 4100, 8, 2),
    row("users_me", 64, 4708, 24.85, 2),
    row("mixed", 64, 2100, 70, 2),
    row("users_me", 16, 3900, 9, 3),
    row("users_me", 64, 4841, 23.70, 3),
    row("mixed", 64, 1700, 90, 3, errors=2),
    row("users_me", 16, 3700, 10, 4),
    row("users_me", 64, 5000, 25, 4),
    row("mixed", 64, 1300, 105.54, 4),
]


def test_every_scenario_and_level_gets_medians_ranges_and_its_first_to_last_change():
    by_key = {(item["scenario"], item["concurrency"]): item for item in passes.figures(ROWS)}
    assert list(by_key) == [("users_me", 16), ("users_me", 64), ("mixed", 64)]  # as first measured
    users = by_key[("users_me", 64)]
    assert users["passes"] == 4
    assert users["rps"] == (4920.5, 4708, 5126)
    assert users["p99_ms"] == (24.925, 23.7, 32.78)
    assert round(users["rps_change"], 4) == round((5000 - 5126) / 5126, 4)
    assert not users["decline"] and users["target_met"] == 3  # pass 1's p99 of 32.78 ms missed it
    mixed = by_key[("mixed", 64)]
    assert mixed["decline"] and mixed["errors"] == 2 and mixed["target_met"] is None
    assert by_key[("users_me", 16)]["rps_change"] == -0.075  # a fall within noise: not flagged
    assert not by_key[("users_me", 16)]["decline"]


def test_the_change_is_from_pass_one_to_the_last_pass_whatever_the_row_order():
    shuffled = [ROWS[9], ROWS[0], ROWS[6], ROWS[3]]  # users_me at 16: passes 4, 1, 3, 2
    (item,) = passes.figures(shuffled)
    assert item["rps_change"] == -0.075


def test_the_printed_table_flags_the_decline_and_counts_the_target():
    lines = passes.summary(ROWS)
    assert lines[0] == passes.HEADER
    assert lines[2].split() == [
        "users_me",
        "64",
        "4",
        "4,920",
        "[4,708-5,126]",
        "24.93",
        "[23.70-32.78]",
        "0",
        "-2%",
        "-24%",
        "target",
        "met",
        "3",
        "of",
        "4",
    ]
    assert lines[3].split()[:11] == [
        "mixed",
        "64",
        "4",
        "1,900",  # the median of 2,638, 2,100, 1,700 and 1,300: half-way between the middle two
        "[1,300-2,638]",
        "80.00",
        "[51.47-105.54]",
        "2",
        "-51%",
        "+105%",
        "DECLINE",
    ]
    assert lines[3].endswith("DECLINE beyond 10%")
    assert lines[1].endswith("-8%           +11%")  # no verdict: no target at 16, and -8% is within noise


def test_one_pass_has_no_change_and_no_rows_say_so():
    (item,) = passes.figures([ROWS[1]])
    assert item["rps_change"] is None and not item["decline"]
    assert passes.summary([ROWS[1]])[1].split()[8:10] == ["-", "-"]
    backlog_only = [{"scenario": "job_backlog", "concurrency": 64, "cleared_s": 40}]  # no pass: not summarised
    assert passes.summary(backlog_only)[1] == "no scenario was measured"


def test_the_summary_ends_with_the_core_speed_of_each_pass_when_the_rows_carry_it():
    timed = [{**item, "core_loop_ms": {1: 40.0, 2: 41.2, 3: 48.0, 4: 52.4}[item["pass"]]} for item in ROWS]
    lines = passes.summary(timed)
    assert lines[-1] == (
        "core speed over the passes: 40, 41, 48, 52 ms for the fixed loop "
        "(+31% from the first pass to the last; higher is slower)"
    )
    assert passes.core_speed_line(ROWS) is None
    assert passes.core_speed_line([item for item in timed if item["pass"] == 1]) is None


def test_a_decline_says_how_nginx_s_cpu_per_request_moved_meanwhile():
    # The same scenario costs nginx the same work in every pass: when its CPU per request rises with the
    # fall, the host's cores probably slowed (docs/benchmarks.md, "Four passes on a slower VM").
    host = {1: 0.031, 2: 0.031, 3: 0.051, 4: 0.048}
    timed = [{**item, "nginx_cpu_ms": host[item["pass"]]} for item in ROWS]
    by_key = {(item["scenario"], item["concurrency"]): item for item in passes.figures(timed)}
    assert round(by_key[("mixed", 64)]["nginx_change"], 2) == 0.55
    mixed = next(line for line in passes.summary(timed) if line.startswith("mixed "))
    assert mixed.endswith("DECLINE beyond 10% (nginx's CPU per request +55% meanwhile)")
    # No nginx figures (--direct), or no decline: nothing added.
    assert next(line for line in passes.summary(ROWS) if line.startswith("mixed ")).endswith("DECLINE beyond 10%")
    users_me_16 = next(line for line in passes.summary(timed) if line.split()[:2] == ["users_me", "16"])
    assert "nginx" not in users_me_16  # -8%: within noise, so no decline to explain

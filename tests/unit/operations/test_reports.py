"""The next maintenance window, the stats table, the HTML charts and the handoff Markdown."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from deploy import reports
from deploy.ledger import LedgerEntry
from deploy.ops.stats import model
from deploy.reports import history as charts

UTC = UTC


@pytest.mark.parametrize(
    "now, start",
    [
        (datetime(2026, 11, 27, 1, 0, tzinfo=UTC), datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),
        (datetime(2026, 12, 6, 1, 59, tzinfo=UTC), datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),
        (datetime(2026, 12, 6, 2, 30, tzinfo=UTC), datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),  # in progress
        (datetime(2026, 12, 6, 3, 0, tzinfo=UTC), datetime(2027, 1, 3, 2, 0, tzinfo=UTC)),  # over: next month, new year
        (datetime(2026, 11, 1, 0, 0, tzinfo=UTC), datetime(2026, 11, 1, 2, 0, tzinfo=UTC)),  # the 1st is a Sunday
        (datetime(2027, 2, 10, tzinfo=UTC), datetime(2027, 3, 7, 2, 0, tzinfo=UTC)),
    ],
)
def test_next_maintenance_window(now, start):
    assert reports.next_maintenance_window(now) == (start, start + timedelta(hours=1))
    assert start.weekday() == 6 and start.day <= 7


def test_next_window_accepts_other_offsets():
    now = datetime(2026, 12, 6, 4, 0, tzinfo=timezone(timedelta(hours=3)))  # 01:00 UTC
    assert reports.next_maintenance_window(now)[0] == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def test_table_aligns_columns():
    text = reports.table(["A", "LONGER"], [["xxx", "1"], ["y", "22"]])
    assert text.splitlines() == ["A    LONGER", "---  ------", "xxx  1", "y    22"]


def test_format_helpers():
    assert reports.fmt_bytes(512) == "512 B"
    assert reports.fmt_bytes(3 * 1024 * 1024) == "3.0 MiB"
    assert reports.fmt_ms(None) == "-" and reports.fmt_ms(1.25) == "1.2"
    assert reports.fmt_percent(12.345, 2) == "12.35%"


def merged_example() -> dict:
    window = model.LogWindow(datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
    for duration in (10.0, 20.0, 250.0):
        window.routes.setdefault("/api/v1/x", model.RouteCounts()).requests += 1
        model.add_to_histogram(window.routes["/api/v1/x"].latency, duration)
    report = {
        "logs": window.to_json(),
        "system": {
            "cpu_percent": 5.0,
            "load": [0.1, 0.2, 0.3],
            "memory": {"used_bytes": 1024, "total_bytes": 4096, "used_percent": 25.0},
            "disk": {"used_bytes": 10, "total_bytes": 100, "used_percent": 10.0},
        },
        "instances": [{"port": 8001, "pid": 42, "cpu_percent": 1.0, "rss_bytes": 2048, "uptime_s": 60}],
        "release": {"version": "v1.0.0"},
        "database": {
            "name": "clicknback",
            "size_bytes": 8 * 1024 * 1024,
            "connections": {"idle": 3},
            "cache_hit_ratio": 0.995,
            "tables": [
                {
                    "table": "users",
                    "total_bytes": 8192,
                    "live_tuples": 5,
                    "dead_tuples": 1,
                    "last_vacuum": None,
                    "last_autovacuum": None,
                }
            ],
            "slowest_statements": None,
        },
    }
    return model.merge_reports({"app1": report})


def test_stats_text_shows_percentiles_target_hosts_and_database():
    text = reports.stats_text(merged_example(), "production")
    assert "p50 20.0  p95 250.0  p99 250.0" in text
    assert "target p99 < 200 ms: OVER TARGET" in text
    assert "/api/v1/x" in text and "OVER" in text
    assert "app1" in text and "v1.0.0" in text and "app-8001" in text
    assert "Database clicknback: 8.0 MiB; connections: idle 3; cache hit ratio 99.50%" in text
    assert "pg_stat_statements is not installed" in text


def test_stats_text_counts_the_plans_log_events():
    """Operation-plan §4.1's events: auth failures (counted, never described) and business warnings
    (expired offers attempted, balance mismatches) are counted in the report, not only logged."""
    window = model.LogWindow(datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC))
    window.add_lines(
        f'{{"time": "2026-11-26T12:00:00+00:00", "level": "WARNING", "event": "{event}"}}'
        for event in ("auth.failure", "auth.failure", "business.warning", "db.slow_query")
    )
    merged = model.merge_reports({"app1": {"logs": window.to_json()}})
    text = reports.stats_text(merged, "production")
    assert (
        "Slow queries (> SLOW_QUERY_MS, default 1000 ms): 1; app errors: 0; auth failures: 2; business warnings: 1;"
    ) in text


def history_example() -> list[dict]:
    merged = merged_example()
    start = datetime(2026, 11, 20, tzinfo=UTC)
    return [model.history_record(merged, "production", start + timedelta(days=day)) for day in range(3)]


def test_svg_chart_draws_one_path_per_series_and_a_reference_line():
    t = datetime(2026, 11, 27, tzinfo=UTC)
    svg = reports.svg_line_chart(
        "Latency", {"p50": [(t, 1.0), (t + timedelta(hours=1), 2.0)], "p99": [(t, 5.0)]}, "ms", ("target", 200.0)
    )
    assert svg.count('<path class="series"') == 2
    assert 'class="reference"' in svg and "M64.0," in svg
    empty = reports.svg_line_chart("Nothing", {"p50": []}, "ms")
    assert "<path" not in empty and "no data yet" in empty


def test_chart_ticks_are_round_and_the_legend_has_its_own_rows_under_the_title():
    assert charts.nice_ticks(0, 1.398) == [0, 0.5, 1.0, 1.5]
    assert [charts.tick_label(v, charts.nice_ticks(0, 1.398)) for v in charts.nice_ticks(0, 1.398)] == [
        "0",
        "0.5",
        "1",
        "1.5",
    ]
    assert charts.nice_ticks(0, 0) == [0, 0.25, 0.5, 0.75, 1.0]  # a flat series still has an axis
    assert charts.nice_ticks(0, 250) == [0, 100, 200, 300]
    t = datetime(2026, 11, 27, tzinfo=UTC)
    names = [f"host-{n} {what}" for n in range(1, 5) for what in ("CPU", "memory")]
    svg = reports.svg_line_chart("Host CPU and memory", {name: [(t, 1.398)] for name in names}, "%")
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
    assert ticks == ["0 %", "0.5 %", "1 %", "1.5 %"], ticks
    # Legend entries sit below the title's line and inside the chart's width, on two rows here.
    legend = [(float(x), float(y)) for x, y in re.findall(r'<rect class="legend" x="([\d.]+)" y="([\d.]+)"', svg)]
    assert len(legend) == 8 and min(y for _, y in legend) > 24 and len({y for _, y in legend}) == 2
    assert all(x + 14 + 7 * len(name) <= charts.CHART_WIDTH for (x, _), name in zip(legend, names))
    # Fluid: the page sizes the chart (viewBox plus CSS), no fixed pixel width.
    assert 'viewBox="0 0 720 ' in svg and "width=" not in svg.split(">", 1)[0]


def test_history_html_is_self_contained_with_four_charts():
    page = reports.history_html(history_example(), "production", datetime(2026, 11, 27, tzinfo=UTC), "latest <text>")
    assert page.count("<svg") == 4
    assert page.count('<path class="series"') >= 5  # p50, p95, p99, error rate, cpu, memory, db size
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in page and "latest &lt;text&gt;" in page


def test_markdown_section_and_known_issues():
    text = "# On call\n\nintro\n\n## Escalation path\n\n1. first\n2. second\n\n## Other\n\nmore\n"
    assert reports.markdown_section(text, "Escalation path") == "1. first\n2. second"
    assert reports.markdown_section(text, "Missing") == ""
    assert (
        reports.known_issues_list("# Known issues\n\npreamble\n\n## A\n\nsee [x](logs.md#y)\n\n## B\n")
        == "### A\n\nsee [x](docs/logs.md#y)\n\n### B"
    )
    assert reports.known_issues_list("# Nothing yet\n") == ""


def test_handoff_markdown_has_every_section():
    entry = LedgerEntry(
        who="me@laptop",
        when="2026-11-27T01:00:00+00:00",
        kind="rollback",
        tag="v1",
        commit="a" * 40,
        release="20261127T010000Z-v1",
        hosts=["app1"],
        duration_s=12.5,
        outcome="ok",
        from_release="20261127T000000Z-v2",
        marked_bad=["20261127T000000Z-v2"],
    )
    data = {
        "environment": "production",
        "generated_at": datetime(2026, 11, 27, 1, 30, tzinfo=UTC),
        "operator": "me",
        "hosts": [
            {
                "name": "app1",
                "release": "20261127T010000Z-v1",
                "version": "v1",
                "commit": "a" * 40,
                "deployed_at": "2026-11-27T01:00:00+00:00",
                "health": [{"name": "app-8001 ready", "ok": True, "answer": "200 {}"}],
            }
        ],
        "ledger": [entry],
        "backups": {
            "last_backup": {"backup_id": "B1", "finished_at": "2026-11-22T01:00:00+00:00", "size_bytes": 2048},
            "last_verified": {"backup_id": "B1", "ok": True, "verified_at": "2026-11-23T02:10:00+00:00"},
        },
        "requests": merged_example()["requests"],
        "known_issues": "## Slow login\n\nArgon2 is slow on purpose.",
        "next_window": reports.next_maintenance_window(datetime(2026, 11, 27, tzinfo=UTC)),
        "escalation": "1. Developer",
    }
    text = reports.handoff_markdown(data)
    for expected in (
        "## Current release",
        "| app1 | 20261127T010000Z-v1 | v1 | aaaaaaaaaaaa | 2026-11-27T01:00:00+00:00 |",
        "OK app1 app-8001 ready",
        "| rollback | v1 | ok | 12.5s |",
        "marked bad: 20261127T000000Z-v2",
        "## Incidents and resolutions\n\n- 2026-11-27T01:00:00+00:00: rollback of v1 ok",
        "Last backup: B1 at 2026-11-22T01:00:00+00:00 (2.0 KiB)",
        "Last verified restore: B1 passed",
        "3 requests, error rate 0.00%",
        "p99 250.0 ms (OVER the 200 ms target)",
        "## Slow login",
        "Sunday 2026-12-06 02:00–03:00 UTC",
        "## Escalation path\n\n1. Developer",
    ):
        assert expected in text, expected


def test_handoff_without_backups_or_requests_says_so():
    data = {
        "environment": "staging",
        "generated_at": datetime(2026, 11, 27, tzinfo=UTC),
        "operator": "me",
        "hosts": [{"name": "s1", "health": []}],
        "ledger": [],
        "backups": {"error": "S3 unreachable"},
        "requests": None,
        "known_issues": "",
        "next_window": reports.maintenance_window(2026, 12),
        "escalation": "",
    }
    text = reports.handoff_markdown(data)
    assert "(nothing deployed)" in text and "No deploys, rollbacks or restores" in text
    assert "Could not list backups: S3 unreachable" in text and "Request logs unavailable" in text


def test_steps_table_totals_against_the_rto():
    text = reports.steps_table(
        [{"step": "a", "status": "ok", "seconds": 30.0, "detail": "x"}, {"step": "b", "status": "ok", "seconds": 40.0}],
        rto_s=3600,
    )
    assert "total 70.0s against an RTO of 60 min (3600s): within" in text
    assert "OVER" in reports.steps_table([{"step": "a", "status": "ok", "seconds": 4000.0}], rto_s=3600)


def test_a_failed_drill_never_reads_within_the_rto():
    steps = [
        {"step": "baseline", "status": "ok", "seconds": 2.0, "detail": "healthy"},
        {"step": "database back", "status": "failed", "seconds": 0.5, "detail": "pg_ctl failed"},
    ]
    text = reports.steps_table(iter(steps), rto_s=3600)  # any iterable, read twice inside
    last = text.splitlines()[-1]
    assert "within" not in last and "FAILED at step 'database back'" in last
    assert "pg_ctl failed" in text


def test_handoff_marks_an_unreachable_host_and_keeps_the_others():
    data = {
        "environment": "prod",
        "generated_at": datetime(2026, 11, 27, tzinfo=UTC),
        "operator": "me",
        "hosts": [
            {"name": "app1", "release": "r1", "health": [{"name": "nginx ready", "ok": True, "answer": "200 ok"}]},
            {
                "name": "app2",
                "release": None,
                "unreachable": "UNREACHABLE: connection refused",
                "health": [{"name": "ssh", "ok": False, "answer": "UNREACHABLE: connection refused"}],
            },
        ],
        "ledger": [],
        "backups": {},
        "requests": None,
        "known_issues": "",
        "escalation": "",
        "next_window": reports.maintenance_window(2026, 12),
        "unreachable": ["app2"],
    }
    text = reports.handoff_markdown(data)
    assert "**Could not read app2**" in text
    assert "| app1 | r1 |" in text and "| app2 | UNREACHABLE: connection refused |" in text
    assert "- OK app1 nginx ready" in text and "- FAIL app2 ssh: UNREACHABLE" in text


def test_row_count_changes_separates_lost_rows_from_new_activity():
    before = {"users": 5, "audit_logs": 0, "payouts": 2}
    assert reports.row_count_changes(before, dict(before)) == ({}, {})
    assert reports.row_count_changes(before, {"users": 5, "audit_logs": 9, "payouts": 1}) == (
        {"payouts": -1},
        {"audit_logs": 9},
    )
    assert reports.row_count_changes(before, {"users": 5, "audit_logs": 0}) == ({"payouts": -2}, {})


def handoff_data(**changes) -> dict:
    data = {
        "environment": "prod",
        "generated_at": datetime(2026, 11, 27, tzinfo=UTC),
        "operator": "me",
        "hosts": [],
        "ledger": [],
        "backups": {},
        "requests": None,
        "known_issues": "",
        "escalation": "",
        "next_window": reports.maintenance_window(2026, 12),
    }
    data.update(changes)
    return data


def table_blocks(text: str) -> list[list[str]]:
    """The Markdown tables of `text`: runs of lines starting with `|`."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks


def assert_valid_markdown(text: str) -> None:
    for block in table_blocks(text):
        assert len(block) >= 2 and re.fullmatch(r"\|(---\|)+", block[1]), block
        columns = block[0].count("|")
        for row in block:  # an escaped \| is text, not a column
            assert row.replace("\\|", "").count("|") == columns, row
    for line in text.splitlines():
        if line.startswith("- "):
            assert line.count("`") % 2 == 0, line  # an open backtick would swallow what follows
    assert "\n\n\n" not in text


def test_handoff_with_a_host_down_keeps_the_table_whole_and_text_uncut():
    problem = (
        "UNREACHABLE: SSH to 127.0.0.3 port 2222 as clicknback failed: connection refused "
        "(is sshd running on that port? is the `port` in the inventory right? try "
        "`ssh -p 2222 clicknback@127.0.0.3`)"
    )
    cause = (
        "host-3: app-8101 FATAL (Exited too quickly (process log may have details)), last log: "
        "SyntaxError: invalid syntax (server.py, line 3); gate: HTTP 000 after 8s"
    )
    failed = LedgerEntry(
        who="me@laptop",
        when="2026-11-27T02:00:00+00:00",
        kind="deploy",
        tag="v2-broken",
        commit="b" * 40,
        release="20261127T020000Z-v2-broken",
        hosts=["host-2", "host-3"],
        duration_s=14.0,
        outcome="rolled_back",
        from_release="20261127T010000Z-v1",
        marked_bad=["20261127T020000Z-v2-broken"],
        detail=cause + "\nhttp+unix://%2Fsrv%2Fapp.sock/health/ready answered HTTP 000 | x\n\n" + "y" * 900,
    )
    data = handoff_data(
        hosts=[
            {"name": "host-2", "release": "r1", "health": [{"name": "nginx ready", "ok": True, "answer": "200 ok"}]},
            {
                "name": "host-3",
                "release": None,
                "unreachable": problem,
                "health": [{"name": "ssh", "ok": False, "answer": problem}],
            },
        ],
        ledger=[failed],
        unreachable=["host-3"],
    )
    text = reports.handoff_markdown(data)
    assert_valid_markdown(text)
    section = reports.markdown_section(text, "Current release")
    assert section.startswith("**Could not read host-3**") and section.index("**Could not") < section.index("| host |")
    health = next(line for line in text.splitlines() if line.startswith("- FAIL host-3 ssh:"))
    assert "connection refused" in health and health.endswith(problem[-20:])  # 200 characters: whole
    incident = next(line for line in text.splitlines() if "deploy of v2-broken rolled_back" in line)
    assert "SyntaxError: invalid syntax" in incident and "FATAL" in incident  # the cause reaches the handoff
    # Bounded, and cut before the 900-character word rather than inside it.
    assert incident.endswith("answered HTTP 000 | x…") and "yyy" not in incident, incident
    assert "\nhttp+" not in text  # the detail's newlines were collapsed, no stray paragraph


def test_shorten_cuts_at_a_word_and_closes_a_backtick():
    assert reports.shorten("short\n\ntext", 50) == "short text"
    assert reports.shorten("is sshd running? is the `port right` in it", 28) == "is sshd running? is the…"
    assert reports.shorten("run `ssh -p 2222 host` now", 18) == "run `ssh -p`…"  # the backtick is closed
    assert len(reports.shorten("word " * 100, 40)) <= 40
    assert reports.shorten("answered HTTP 000 after 8s (app-8101 is FATAL)", 30) == "answered HTTP 000 after 8s…"
    assert reports.md_cell("a | b\nc") == "a \\| b c"


def test_a_live_restore_shows_in_the_handoff_with_its_backups():
    restore = LedgerEntry(
        who="me@laptop",
        when="2026-11-27T03:00:00+00:00",
        kind="restore",
        tag="v1",
        commit="a" * 40,
        release="20261127T010000Z-v1",
        hosts=["host-2", "host-3"],
        duration_s=42.0,
        outcome="ok",
        backup="20261126T010000Z-abc123",
        safety_backup="20261127T025900Z-def456",
    )
    sev1 = LedgerEntry(
        who="me@laptop",
        when="2026-11-27T04:00:00+00:00",
        kind="restore",
        tag="v1",
        commit="a" * 40,
        release="20261127T010000Z-v1",
        hosts=["host-2"],
        duration_s=30.0,
        outcome="ok",
        backup="20261126T010000Z-abc123",
        safety_backup=None,
    )
    text = reports.handoff_markdown(handoff_data(ledger=[restore, sev1], hosts=[{"name": "host-2", "health": []}]))
    assert_valid_markdown(text)
    recent = reports.markdown_section(text, "Recent deploys, rollbacks and restores")
    assert "| restore | v1 | ok | 42.0s |" in recent
    assert "live database replaced from backup 20261126T010000Z-abc123; safety backup 20261127T025900Z-def456" in recent
    incidents = reports.markdown_section(text, "Incidents and resolutions")
    assert "- 2026-11-27T03:00:00+00:00: live restore from backup 20261126T010000Z-abc123 ok" in incidents
    assert "NO safety backup" in incidents


def test_the_maintenance_line_names_a_command_the_operator_can_run_on_the_host():
    text = reports.handoff_markdown(
        handoff_data(
            maintenance_host="host-2",
            maintenance_command="cd /srv/cnb/current && ENV_FILE=/srv/cnb/shared/.env ./.venv/bin/python -m deploy.ops.cli maintenance",
        )
    )
    window = reports.markdown_section(text, "Next maintenance window")
    assert "clicknback-ops" not in text
    assert (
        "on that host it is `cd /srv/cnb/current && ENV_FILE=/srv/cnb/shared/.env ./.venv/bin/python -m "
        "deploy.ops.cli maintenance`" in window
    )


@pytest.mark.parametrize(
    "now, due",
    [
        (datetime(2026, 11, 27, tzinfo=UTC), False),  # next window 2026-12-06
        (datetime(2026, 12, 6, 3, 0, tzinfo=UTC), True),  # next window 2027-01-03: a quarter's first
        (datetime(2027, 4, 4, 2, 30, tzinfo=UTC), True),  # in progress, April
        (datetime(2027, 5, 1, tzinfo=UTC), False),
    ],
)
def test_the_handoff_says_when_the_quarterly_drill_is_due(now, due):
    text = reports.handoff_markdown(handoff_data(next_window=reports.next_maintenance_window(now)))
    window = reports.markdown_section(text, "Next maintenance window")
    assert ("quarterly failover drill is due" in window) is due
    if due:
        assert "`invoke drill --env staging`" in window


def backups_of(backup_at: str, verified_at: str) -> dict:
    return {
        "last_backup": {"backup_id": "B2", "finished_at": backup_at, "size_bytes": 2048},
        "last_verified": {"backup_id": "B1", "ok": True, "verified_at": verified_at},
    }


def test_the_handoff_flags_a_weekly_backup_or_a_monthly_restore_test_that_did_not_happen():
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    on_time = reports.handoff_markdown(
        handoff_data(generated_at=now, backups=backups_of("2026-11-22T01:00:20+00:00", "2026-11-01T02:05:00+00:00"))
    )
    assert "OVERDUE" not in reports.markdown_section(on_time, "Backups")
    # Sunday 01:00, the minute before the next weekly backup: still on time.
    sunday = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    assert "OVERDUE" not in reports.markdown_section(
        reports.handoff_markdown(
            handoff_data(
                generated_at=sunday, backups=backups_of("2026-11-22T01:00:20+00:00", "2026-11-01T02:05:00+00:00")
            )
        ),
        "Backups",
    )
    late = reports.markdown_section(
        reports.handoff_markdown(
            handoff_data(generated_at=now, backups=backups_of("2026-11-15T01:00:20+00:00", "2026-10-04T02:05:00+00:00"))
        ),
        "Backups",
    )
    backup_line, verified_line = late.splitlines()
    assert backup_line.startswith("- Last backup: B2 at 2026-11-15T01:00:20+00:00") and "OVERDUE" in backup_line
    assert "RPO 7 days" in backup_line and "`invoke backup`" in backup_line
    assert verified_line.startswith("- Last verified restore: B1 passed") and "OVERDUE" in verified_line
    assert "`invoke verify-backup`" in verified_line


def test_older_than_reads_offsets_and_treats_an_unreadable_stamp_as_old():
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert not reports.older_than("2026-11-27T14:30:00+03:00", now, timedelta(hours=1))  # 11:30 UTC
    assert reports.older_than("2026-11-27T12:30:00+03:00", now, timedelta(hours=1))  # 09:30 UTC
    assert reports.older_than("2026-11-27T11:30:00", now, timedelta(minutes=10))  # no offset: UTC
    assert reports.older_than("not a time", now, timedelta(days=365))
    assert reports.older_than(None, now, timedelta(days=365))


@pytest.mark.parametrize(
    "now, start",
    [
        (datetime(2026, 11, 27, 12, 0, tzinfo=UTC), datetime(2026, 11, 1, 2, 0, tzinfo=UTC)),
        (datetime(2026, 12, 6, 2, 30, tzinfo=UTC), datetime(2026, 11, 1, 2, 0, tzinfo=UTC)),  # this one still running
        (datetime(2026, 12, 6, 3, 0, tzinfo=UTC), datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),  # just over
        (datetime(2027, 1, 2, tzinfo=UTC), datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),  # across the new year
    ],
)
def test_last_maintenance_window_is_the_latest_one_over(now, start):
    assert reports.last_maintenance_window(now) == (start, start + timedelta(hours=1))


def maintenance_record(
    started: str,
    finished: str,
    exit_status: int = 0,
    summary: str = "done in 812.0s; 6 of 6 steps ok; failed: none; partial: none; skipped: none",
) -> str:
    return json.dumps(
        {
            "started_at": started,
            "finished_at": finished,
            "exit_status": exit_status,
            "shared_steps": True,
            "summary": summary,
            "steps": [],
        }
    )


def test_a_maintenance_record_is_read_or_said_to_be_missing_or_unreadable():
    assert reports.parse_maintenance_record("") is None
    assert reports.parse_maintenance_record("\n") is None
    for broken in ("{not json", "[]", '{"started_at": "yesterday", "finished_at": "today"}', '{"summary": "x"}'):
        assert "not readable" in reports.parse_maintenance_record(broken)["error"], broken
    record = reports.parse_maintenance_record(
        maintenance_record("2026-11-01T02:00:03+00:00", "2026-11-01T02:13:35+00:00")
    )
    assert record["started_at"] == datetime(2026, 11, 1, 2, 0, 3, tzinfo=UTC)
    assert record["exit_status"] == 0


def test_the_handoff_says_how_each_host_s_last_maintenance_window_ended_and_flags_a_missed_one():
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    on_time = reports.parse_maintenance_record(
        maintenance_record("2026-11-01T02:00:03+00:00", "2026-11-01T02:13:35+00:00")
    )
    failed = reports.parse_maintenance_record(
        maintenance_record(
            "2026-11-01T02:00:02+00:00",
            "2026-11-01T02:01:10+00:00",
            exit_status=1,
            summary="done in 68.0s; 4 of 6 steps ok; failed: check-wallets; partial: none; skipped: reindex",
        )
    )
    missed = reports.parse_maintenance_record(
        maintenance_record("2026-10-04T02:00:01+00:00", "2026-10-04T02:12:00+00:00")
    )
    hosts = [
        {"name": "app1", "health": [], "maintenance": on_time},
        {"name": "app2", "health": [], "maintenance": failed},
        {"name": "app3", "health": [], "maintenance": missed},
        {"name": "app4", "health": [], "maintenance": None},
        {"name": "app5", "health": [], "maintenance": {"error": "the record is not readable"}},
        {"name": "app6", "health": [], "unreachable": "UNREACHABLE: refused"},
    ]
    text = reports.handoff_markdown(handoff_data(generated_at=now, hosts=hosts))
    section = reports.markdown_section(text, "Last maintenance window")
    lines = section.strip().splitlines()
    assert lines[0] == (
        "- app1: 2026-11-01 02:00–02:13 UTC, ok: done in 812.0s; 6 of 6 steps ok; failed: none; "
        "partial: none; skipped: none"
    )
    assert lines[1].startswith("- app2: 2026-11-01 02:00–02:01 UTC, FAILED: ") and "failed: check-wallets" in lines[1]
    assert "OVERDUE" not in lines[0] + lines[1]
    assert lines[2].startswith("- app3: 2026-10-04 02:00–02:12 UTC, ok: ")
    assert lines[2].endswith("— OVERDUE: the 2026-11-01 window did not run here; run `invoke maintenance`")
    assert lines[3] == "- app4: no maintenance window recorded yet"
    assert lines[4] == "- app5: the record is not readable"
    assert len(lines) == 5  # the unreachable host is flagged in its own sections, not here
    assert text.index("## Last maintenance window") < text.index("## Next maintenance window")

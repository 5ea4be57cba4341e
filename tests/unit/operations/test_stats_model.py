"""Log parsing, nearest-rank percentiles, windows, /proc parsers and merging host reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from deploy.ops import readiness_poller
from deploy.ops.stats import model, proc

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def request_line(minutes: float, route: str | None, status: int, duration: float, request_id: str = "r") -> str:
    when = (T0 + timedelta(minutes=minutes)).isoformat()
    return json.dumps(
        {
            "time": when,
            "level": "INFO",
            "event": "http.request",
            "message": "",
            "request_id": request_id,
            "method": "GET",
            "route": route,
            "path": route or "/nope",
            "status": status,
            "duration_ms": duration,
            "user_id": None,
            "client": "127.0.0.1",
        }
    )


def event_line(minutes: float, event: str) -> str:
    return json.dumps(
        {
            "time": (T0 + timedelta(minutes=minutes)).isoformat(),
            "level": "WARNING",
            "event": event,
            "message": "x",
            "duration_ms": 1500.0,
        }
    )


def test_percentile_is_nearest_rank_over_a_histogram():
    histogram: model.Histogram = {}
    for value in range(1, 101):
        model.add_to_histogram(histogram, float(value))
    assert model.percentile(histogram, 50) == 50.0
    assert model.percentile(histogram, 95) == 95.0
    assert model.percentile(histogram, 99) == 99.0
    assert model.percentile(histogram, 100) == 100.0
    assert model.percentile({}, 99) is None
    assert model.percentile({7.5: 1}, 1) == 7.5


def test_percentile_with_repeated_values_and_small_samples():
    histogram = {1.0: 3, 10.0: 1}  # 1, 1, 1, 10
    assert model.percentile(histogram, 50) == 1.0
    assert model.percentile(histogram, 75) == 1.0
    assert model.percentile(histogram, 76) == 10.0
    assert model.percentile(histogram, 99) == 10.0


def test_merged_histograms_give_the_percentiles_of_all_requests():
    a = {1.0: 50}
    b = {300.0: 50}
    merged = model.merge_histograms([a, b])
    assert model.percentile(merged, 50) == 1.0
    assert model.percentile(merged, 51) == 300.0


def test_parse_log_line_rejects_garbage_and_keeps_time():
    assert model.parse_log_line("not json") is None
    assert model.parse_log_line('{"no": "time"}') is None
    assert model.parse_log_line('{"time": "yesterday"}') is None
    record = model.parse_log_line(request_line(0, "/a", 200, 1.0))
    assert record["_time"] == T0
    assert model.parse_time("2026-11-27T12:00:00Z") == T0


def test_window_counts_requests_errors_and_events_inside_the_window_only():
    window = model.LogWindow(T0, T0 + timedelta(hours=1))
    lines = [
        request_line(-1, "/a", 200, 999.0),  # before the window
        request_line(0, "/a", 200, 10.0),
        request_line(1, "/a", 500, 20.0),
        request_line(2, "/a", 404, 30.0),
        request_line(3, None, 404, 5.0),
        request_line(60, "/a", 200, 999.0),  # at the end: excluded (half-open)
        event_line(5, "db.slow_query"),
        event_line(6, "app.error"),
        event_line(7, "auth.failure"),
        "garbage",
        "",
    ]
    window.add_lines(lines)
    summary = window.summary()
    assert summary["requests"] == 4
    assert summary["server_errors"] == 1 and summary["client_errors"] == 2
    assert summary["error_rate"] == 0.25
    assert (summary["p50_ms"], summary["p95_ms"], summary["p99_ms"], summary["max_ms"]) == (10.0, 30.0, 30.0, 30.0)
    assert summary["routes"]["/a"]["requests"] == 3
    assert summary["routes"][model.UNKNOWN_ROUTE]["requests"] == 1
    assert (summary["slow_queries"], summary["app_errors"], summary["auth_failures"]) == (1, 1, 1)
    assert summary["unparsable_lines"] == 1
    assert summary["p99_ok"] is True and summary["routes_over_target"] == []


def test_p99_target_is_strict_and_names_the_routes_over_it():
    window = model.LogWindow(T0, T0 + timedelta(hours=1))
    window.add_lines([request_line(0, "/slow", 200, 200.0), request_line(0, "/fast", 200, 199.999)])
    summary = window.summary()
    assert summary["routes"]["/slow"]["p99_ok"] is False
    assert summary["routes"]["/fast"]["p99_ok"] is True
    assert summary["routes_over_target"] == ["/slow"]
    assert summary["p99_ok"] is False


def test_window_json_round_trip_and_merge():
    first = model.LogWindow(T0, T0 + timedelta(hours=1))
    first.add_lines([request_line(1, "/a", 200, 1.0), event_line(2, "db.slow_query")])
    second = model.LogWindow.from_json(json.loads(json.dumps(first.to_json())))
    assert second.summary() == first.summary()
    first.merge(second)
    assert first.summary()["requests"] == 2 and first.summary()["slow_queries"] == 2


def test_the_gates_probes_of_standby_instances_are_not_client_traffic():
    window = model.LogWindow(T0, T0 + timedelta(hours=1))
    gate = [request_line(1, "/health/ready", 503, 0.5, f"gate-probe-4242-{n}") for n in range(1, 70)]
    clients = [request_line(2, "/api/v1/offers", 200, 10.0) for _ in range(40)]
    clients += [
        request_line(3, "/health/ready", 503, 1.0),  # a monitor's probe through nginx: counted
        request_line(4, "/api/v1/offers", 500, 10.0, "gate-probe-1-1"),  # a client's own id: counted
    ]
    window.add_lines(gate + clients)
    summary = window.summary()
    assert summary["gate_probes"] == 69
    assert summary["requests"] == 42 and summary["server_errors"] == 2
    assert summary["error_rate"] == round(2 / 42, 6)
    assert summary["routes"]["/health/ready"]["requests"] == 1
    again = model.LogWindow.from_json(json.loads(json.dumps(window.to_json())))
    assert again.summary() == summary
    merged = model.merge_reports({"h1": {"logs": window.to_json()}, "h2": {"logs": window.to_json()}})
    assert merged["requests"]["gate_probes"] == 138 and merged["requests"]["error_rate"] == summary["error_rate"]
    # A host still on a release whose report has no gate_probes counter merges as 0.
    old = window.to_json()
    del old["gate_probes"]
    assert model.LogWindow.from_json(old).gate_probes == 0


def test_invoke_health_s_probes_are_not_client_traffic_either():
    window = model.LogWindow(T0, T0 + timedelta(hours=1))
    health = [request_line(1, "/health/live", 200, 0.4, f"health-probe-1765000000{n}-77") for n in range(5)]
    health += [request_line(1, "/health/ready", 503, 0.4, "health-probe-1765000000999-77")]
    window.add_lines(health + [request_line(2, "/api/v1/offers", 200, 10.0)])
    summary = window.summary()
    assert summary["gate_probes"] == 6 and summary["requests"] == 1 and summary["server_errors"] == 0
    assert list(summary["routes"]) == ["/api/v1/offers"]


def test_the_poller_names_its_probes_as_the_stats_model_expects():
    assert readiness_poller.GATE_PROBE_PREFIX == model.GATE_PROBE_PREFIX


PROC_STAT = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"
PROC_STAT_LATER = "cpu  200 0 100 900 50 0 0 0 0 0\n"


def test_proc_parsers():
    assert proc.parse_cpu_times(PROC_STAT) == (150, 1000)
    assert proc.cpu_percent(proc.parse_cpu_times(PROC_STAT), proc.parse_cpu_times(PROC_STAT_LATER)) == 60.0
    meminfo = "MemTotal:       2000 kB\nMemFree:         100 kB\nMemAvailable:    500 kB\n"
    assert proc.parse_meminfo(meminfo) == {
        "total_bytes": 2048000,
        "available_bytes": 512000,
        "used_bytes": 1536000,
        "used_percent": 75.0,
    }
    assert proc.parse_loadavg("0.50 0.25 0.10 1/123 4567\n") == [0.5, 0.25, 0.1]
    stat = "4242 (python -m (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 700 300 0 0 20 0 3 0 12345 0 0"
    assert proc.parse_pid_cpu_ticks(stat) == 1000
    assert proc.parse_rss_bytes("Name:\tpython\nVmRSS:\t  2048 kB\n") == 2097152
    with pytest.raises(ValueError):
        proc.parse_cpu_times("intr 1 2 3\n")


def test_instance_port_from_command_lines():
    assert proc.instance_port(["/x/python", "-m", "server", "--host", "127.0.0.1", "--port", "8001", ""]) == 8001
    assert proc.instance_port(["/x/python", "-m", "server", "--unix", "/srv/cnb/run/app-8102.sock"]) == 8102
    assert proc.instance_port(["/x/python", "-m", "server", "--unix", "/srv/cnb/run/other.sock"]) is None
    assert proc.instance_port(["python", "-m", "deploy.ops.cli", "stats"]) is None
    assert proc.instance_port(["python", "-m", "server"]) is None
    assert proc.instance_port(["nginx", "server", "--port", "1"]) is None


def host_report(durations: list[float], cpu: float) -> dict:
    window = model.LogWindow(T0, T0 + timedelta(hours=24))
    window.add_lines([request_line(i, "/a", 200, d) for i, d in enumerate(durations)])
    return {
        "logs": window.to_json(),
        "system": {
            "cpu_percent": cpu,
            "memory": {"used_percent": 40.0},
            "load": [0.1, 0.1, 0.1],
            "disk": {"used_percent": 10.0},
        },
        "instances": [{"port": 8001, "pid": 1, "cpu_percent": 1.5, "rss_bytes": 100}],
        "release": {"version": "v1"},
        "database": {"size_bytes": 2048, "connections": {"idle": 2, "active": 1}, "cache_hit_ratio": 0.99},
    }


def test_merge_reports_combines_requests_exactly_and_history_record_is_flat():
    merged = model.merge_reports({"h1": host_report([1.0] * 98, 10.0), "h2": host_report([500.0, 600.0], 20.0)})
    requests = merged["requests"]
    assert requests["requests"] == 100
    assert requests["p50_ms"] == 1.0 and requests["p99_ms"] == 500.0 and requests["max_ms"] == 600.0
    assert merged["hosts"]["h2"]["requests"] == 2
    record = model.history_record(merged, "sandbox", T0)
    assert record["time"] == "2026-11-27T12:00:00+00:00"
    assert record["p99_ms"] == 500.0 and record["database_bytes"] == 2048 and record["connections"] == 3
    assert record["hosts"]["h1"]["cpu_percent"] == 10.0 and record["hosts"]["h1"]["app_cpu_percent"] == 1.5
    history = model.parse_history(json.dumps(record) + "\n{broken\n" + json.dumps({**record, "time": "2026-01-01"}))
    assert [r["time"] for r in history] == ["2026-01-01", record["time"]]


@pytest.mark.parametrize(
    "statement, shown",
    [
        ("ALTER ROLE app PASSWORD 'it''s-pw'", "ALTER ROLE app PASSWORD '***'"),
        ("ALTER ROLE app PASSWORD E'p\\'w' LOGIN", "ALTER ROLE app PASSWORD '***' LOGIN"),
        ("DO $x$ BEGIN EXECUTE 'ALTER ROLE a PASSWORD ''pw'''; END $x$", "DO '***'"),
        ("ALTER ROLE \"o'neil\" PASSWORD 'pw'", "ALTER ROLE \"o'neil\" PASSWORD '***'"),
        ("-- don't\nALTER ROLE a PASSWORD 'pw'", "-- don't\nALTER ROLE a PASSWORD '***'"),
        (
            "/* it's */ CREATE SUBSCRIPTION s CONNECTION 'password=pw' PUBLICATION p",
            "/* it's */ CREATE SUBSCRIPTION s CONNECTION '***' PUBLICATION p",
        ),
        ("SET app.key = 'cut-short", "SET app.key = '***'"),
        (
            "SELECT id FROM users WHERE email = $1 AND id = ANY($2)",
            "SELECT id FROM users WHERE email = $1 AND id = ANY($2)",
        ),
    ],
)
def test_statement_literals_are_masked_whatever_surrounds_them(statement, shown):
    assert model.mask_sql_literals(statement) == shown

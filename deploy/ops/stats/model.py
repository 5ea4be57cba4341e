"""Pure numbers for `stats`: JSON log analysis, percentiles, /proc parsing and merging host reports.

Nothing here reads files, the clock or the network: the VPS-side `clicknback-ops stats` feeds it
log lines and /proc texts, the laptop merges the per-host JSON it prints. Latency percentiles use
the nearest-rank definition (the smallest logged duration with at least p% of requests at or below
it), so every reported percentile is a duration that really occurred.

Per-host reports carry latency *histograms* (duration -> count at the logged 0.001 ms resolution),
not percentiles, because percentiles of several hosts cannot be combined; histograms can.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

TARGET_P99_MS = 200.0  # operation-plan §7.1
SLOW_QUERY_MS = 1000.0  # operation-plan §7.1
PERCENTILES = (50, 95, 99)
UNKNOWN_ROUTE = "(unknown route)"
# The readiness gate's poller (deploy/ops/readiness_poller.py, which keeps its own copy: it runs
# without this package) names its probes with this request id. A deploy's gate probes the standby
# instances until they are ready, and every probe of a broken release answers 503: those answers
# went to the toolkit, not to a client, so they are counted apart from the error rate.
GATE_PROBE_PREFIX = "gate-probe-"
# `invoke health` (and the handoff's probes) name theirs too: an operator checking a host is no
# client either. Both are counted under `gate_probes`, the name stored stats history already has.
HEALTH_PROBE_PREFIX = "health-probe-"
TOOLKIT_PROBE_PREFIXES = (GATE_PROBE_PREFIX, HEALTH_PROBE_PREFIX)
HEALTH_PATH_PREFIX = "/health/"
COUNTERS = ("slow_queries", "app_errors", "auth_failures", "business_warnings", "unparsable_lines", "gate_probes")


# -- statements ------------------------------------------------------------------------------

# pg_stat_statements replaces the constants of SELECT/INSERT/UPDATE/DELETE with $1, $2, but keeps
# a utility statement as it was typed (PostgreSQL 15): `ALTER ROLE app PASSWORD 'new one'` run in
# the app's database is among the slowest (the server hashes the password) and would be printed
# by `invoke stats` and kept in its history. Every literal is masked on the host, before the text
# leaves it; comments and quoted identifiers are skipped so an apostrophe in them cannot shift
# the reading of the literals after them.
_SQL_TOKENS = re.compile(
    r"""(?P<keep>--[^\n]*|/\*.*?\*/|"(?:[^"]|"")*")"""
    r"""|\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z)"""
    r"""|[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)"""
    r"""|'(?:[^']|'')*(?:'|\Z)""",
    re.DOTALL,
)


def mask_sql_literals(statement: str) -> str:
    """The statement with every string literal (plain, E'', dollar-quoted) shown as '***'."""
    return _SQL_TOKENS.sub(lambda match: match.group("keep") or "'***'", statement)


# -- log lines -------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """ISO-8601 with offset (`...+00:00` or `...Z`) -> aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_log_line(line: str) -> dict | None:
    """One JSON log object, or None for a line that is not one (partial write, stray text)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("time"), str):
        return None
    try:
        record["_time"] = parse_time(record["time"])
    except ValueError:
        return None
    return record


def is_gate_probe(record: dict) -> bool:
    """A request the toolkit sent (the deploy gate, `invoke health`): its request id, on a health
    route (a client naming its own requests so could hide no more than its health probes)."""
    return str(record.get("request_id") or "").startswith(TOOLKIT_PROBE_PREFIXES) and str(
        record.get("path") or ""
    ).startswith(HEALTH_PATH_PREFIX)


# -- histograms and percentiles --------------------------------------------------------------

Histogram = dict[float, int]


def add_to_histogram(histogram: Histogram, duration_ms: float) -> None:
    key = round(float(duration_ms), 3)
    histogram[key] = histogram.get(key, 0) + 1


def merge_histograms(histograms: Iterable[Histogram]) -> Histogram:
    merged: Histogram = {}
    for histogram in histograms:
        for value, count in histogram.items():
            merged[value] = merged.get(value, 0) + count
    return merged


def percentile(histogram: Histogram, p: float) -> float | None:
    """Nearest-rank percentile of the durations in `histogram`; None when it is empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)  # unreachable: the ranks add up to total


def histogram_to_json(histogram: Histogram) -> list[list[float]]:
    return [[value, count] for value, count in sorted(histogram.items())]


def histogram_from_json(pairs: list) -> Histogram:
    return {float(value): int(count) for value, count in pairs}


# -- request-log analysis --------------------------------------------------------------------


@dataclass
class RouteCounts:
    requests: int = 0
    server_errors: int = 0
    client_errors: int = 0
    latency: Histogram = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "requests": self.requests,
            "server_errors": self.server_errors,
            "client_errors": self.client_errors,
            "latency": histogram_to_json(self.latency),
        }

    @classmethod
    def from_json(cls, data: dict) -> RouteCounts:
        return cls(
            int(data["requests"]),
            int(data["server_errors"]),
            int(data["client_errors"]),
            histogram_from_json(data["latency"]),
        )


@dataclass
class LogWindow:
    """What the request logs of one or more hosts say about [start, end)."""

    start: datetime
    end: datetime
    routes: dict[str, RouteCounts] = field(default_factory=dict)
    slow_queries: int = 0
    app_errors: int = 0
    auth_failures: int = 0
    business_warnings: int = 0
    unparsable_lines: int = 0
    gate_probes: int = 0  # not in `routes`: only traffic clients sent makes the error rate

    def add_record(self, record: dict) -> None:
        when = record["_time"]
        if not (self.start <= when < self.end):
            return
        event = record.get("event")
        if event == "http.request" and is_gate_probe(record):
            self.gate_probes += 1
        elif event == "http.request":
            route = record.get("route") or UNKNOWN_ROUTE
            counts = self.routes.setdefault(route, RouteCounts())
            counts.requests += 1
            status = record.get("status")
            if isinstance(status, int):
                counts.server_errors += status >= 500
                counts.client_errors += 400 <= status < 500
            duration = record.get("duration_ms")
            if isinstance(duration, (int, float)) and not isinstance(duration, bool):
                add_to_histogram(counts.latency, duration)
        elif event == "db.slow_query":
            self.slow_queries += 1
        elif event == "app.error":
            self.app_errors += 1
        elif event == "auth.failure":
            self.auth_failures += 1
        elif event == "business.warning":
            self.business_warnings += 1

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            if not line.strip():
                continue
            record = parse_log_line(line)
            if record is None:
                self.unparsable_lines += 1
            else:
                self.add_record(record)

    def merge(self, other: LogWindow) -> None:
        for route, counts in other.routes.items():
            mine = self.routes.setdefault(route, RouteCounts())
            mine.requests += counts.requests
            mine.server_errors += counts.server_errors
            mine.client_errors += counts.client_errors
            mine.latency = merge_histograms([mine.latency, counts.latency])
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "routes": {route: counts.to_json() for route, counts in sorted(self.routes.items())},
            "slow_queries": self.slow_queries,
            "app_errors": self.app_errors,
            "auth_failures": self.auth_failures,
            "business_warnings": self.business_warnings,
            "unparsable_lines": self.unparsable_lines,
            "gate_probes": self.gate_probes,
        }

    @classmethod
    def from_json(cls, data: dict) -> LogWindow:
        window = cls(
            parse_time(data["start"]),
            parse_time(data["end"]),
            {route: RouteCounts.from_json(c) for route, c in data["routes"].items()},
        )
        for name in COUNTERS:  # a host whose release predates a counter reports none: 0
            setattr(window, name, int(data.get(name, 0)))
        return window

    def summary(self, target_p99_ms: float = TARGET_P99_MS) -> dict:
        """Requests, error rate and p50/p95/p99 overall and per route, checked against the p99 target."""
        total = RouteCounts()
        for counts in self.routes.values():
            total.requests += counts.requests
            total.server_errors += counts.server_errors
            total.client_errors += counts.client_errors
            total.latency = merge_histograms([total.latency, counts.latency])
        routes = {route: _describe(counts, target_p99_ms) for route, counts in sorted(self.routes.items())}
        overall = _describe(total, target_p99_ms)
        return {
            "window": {
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "hours": round((self.end - self.start).total_seconds() / 3600, 2),
            },
            **overall,
            "target_p99_ms": target_p99_ms,
            "routes_over_target": sorted(r for r, d in routes.items() if d["p99_ok"] is False),
            "routes": routes,
            "slow_queries": self.slow_queries,
            "app_errors": self.app_errors,
            "auth_failures": self.auth_failures,
            "business_warnings": self.business_warnings,
            "unparsable_lines": self.unparsable_lines,
            "gate_probes": self.gate_probes,
        }


def _describe(counts: RouteCounts, target_p99_ms: float) -> dict:
    p = {f"p{n}_ms": percentile(counts.latency, n) for n in PERCENTILES}
    return {
        "requests": counts.requests,
        "server_errors": counts.server_errors,
        "client_errors": counts.client_errors,
        "error_rate": round(counts.server_errors / counts.requests, 6) if counts.requests else 0.0,
        **p,
        "max_ms": max(counts.latency) if counts.latency else None,
        "p99_ok": None if p["p99_ms"] is None else p["p99_ms"] < target_p99_ms,
    }


def window_ending(end: datetime, hours: float) -> tuple[datetime, datetime]:
    return end - timedelta(hours=hours), end


# -- merging host reports (laptop side) ------------------------------------------------------


def merge_reports(reports: dict[str, dict], target_p99_ms: float = TARGET_P99_MS) -> dict:
    """Combine the JSON of `clicknback-ops stats` from every host into one view.

    Request logs are merged (exact combined percentiles); system figures stay per host; the
    database (shared by every host) is taken from the first host that reported it.
    """
    windows = [LogWindow.from_json(r["logs"]) for r in reports.values() if r.get("logs")]
    merged_logs = None
    if windows:
        merged_logs = LogWindow(min(w.start for w in windows), max(w.end for w in windows))
        for window in windows:
            merged_logs.merge(window)
    database = next((r["database"] for r in reports.values() if r.get("database")), None)
    return {
        "hosts": {
            name: {
                "system": r.get("system"),
                "instances": r.get("instances", []),
                "release": r.get("release"),
                "requests": (LogWindow.from_json(r["logs"]).summary(target_p99_ms)["requests"] if r.get("logs") else 0),
            }
            for name, r in reports.items()
        },
        "database": database,
        "requests": merged_logs.summary(target_p99_ms) if merged_logs else None,
    }


def history_record(merged: dict, environment: str, when: datetime) -> dict:
    """One flat line of the local stats history (what the HTML charts plot over time)."""
    requests = merged.get("requests") or {}
    database = merged.get("database") or {}
    hosts = {}
    for name, host in merged["hosts"].items():
        system = host.get("system") or {}
        instances = host.get("instances") or []
        hosts[name] = {
            "cpu_percent": system.get("cpu_percent"),
            "memory_used_percent": (system.get("memory") or {}).get("used_percent"),
            "load1": (system.get("load") or [None])[0],
            "disk_used_percent": (system.get("disk") or {}).get("used_percent"),
            "app_cpu_percent": round(sum(i.get("cpu_percent") or 0 for i in instances), 1),
            "app_rss_bytes": sum(i.get("rss_bytes") or 0 for i in instances),
        }
    return {
        "time": when.astimezone(UTC).isoformat(timespec="seconds"),
        "environment": environment,
        "requests": requests.get("requests", 0),
        "error_rate": requests.get("error_rate", 0.0),
        "p50_ms": requests.get("p50_ms"),
        "p95_ms": requests.get("p95_ms"),
        "p99_ms": requests.get("p99_ms"),
        "slow_queries": requests.get("slow_queries", 0),
        "database_bytes": database.get("size_bytes"),
        "connections": sum((database.get("connections") or {}).values()) if database else None,
        "cache_hit_ratio": database.get("cache_hit_ratio"),
        "hosts": hosts,
    }


def parse_history(text: str) -> list[dict]:
    """History lines, oldest first; a damaged line is skipped rather than losing the rest."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "time" in record:
            records.append(record)
    return sorted(records, key=lambda r: r["time"])

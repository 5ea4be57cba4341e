"""The stats table the `stats` task prints, from the hosts' merged figures."""

from __future__ import annotations

from deploy.ops.pitr.lag import replication_text
from deploy.ops.stats.model import SLOW_QUERY_MS
from deploy.reports.text import fmt_bytes, fmt_ms, fmt_percent, table


def stats_text(merged: dict, environment: str) -> str:
    """The readable report of `invoke stats` (merged view of every host)."""
    out: list[str] = [f"ClickNBack stats: environment {environment}"]
    requests = merged.get("requests")
    if requests:
        window = requests["window"]
        verdict = ("OK" if requests["p99_ok"] else "OVER TARGET") if requests["p99_ok"] is not None else "no requests"
        out += [
            "",
            f"Requests {window['start'][:16]} .. {window['end'][:16]} UTC ({window['hours']} h): "
            f"{requests['requests']} requests, {requests['server_errors']} 5xx "
            f"(error rate {fmt_percent(100 * requests['error_rate'], 2)}), {requests['client_errors']} 4xx",
            f"Latency ms: p50 {fmt_ms(requests['p50_ms'])}  p95 {fmt_ms(requests['p95_ms'])}  "
            f"p99 {fmt_ms(requests['p99_ms'])}  max {fmt_ms(requests['max_ms'])}  "
            f"(target p99 < {requests['target_p99_ms']:g} ms: {verdict})",
            f"Slow queries (> SLOW_QUERY_MS, default {SLOW_QUERY_MS:g} ms): {requests['slow_queries']}; "
            f"app errors: {requests['app_errors']}; "
            f"auth failures: {requests['auth_failures']}; business warnings: {requests['business_warnings']}; "
            f"unparsable log lines: {requests['unparsable_lines']}; "
            f"deploy gate and health probes (not counted above): {requests.get('gate_probes', 0)}",
        ]
        if requests["routes"]:
            rows = [
                [
                    route,
                    str(r["requests"]),
                    fmt_percent(100 * r["error_rate"], 2),
                    fmt_ms(r["p50_ms"]),
                    fmt_ms(r["p95_ms"]),
                    fmt_ms(r["p99_ms"]),
                    "ok" if r["p99_ok"] else "OVER",
                ]
                for route, r in sorted(requests["routes"].items(), key=lambda item: -item[1]["requests"])
            ]
            out += ["", table(["ROUTE", "REQUESTS", "5XX", "P50", "P95", "P99", "P99<TARGET"], rows)]
    rows = []
    for name, host in merged["hosts"].items():
        system = host.get("system") or {}
        memory = system.get("memory") or {}
        disk = system.get("disk") or {}
        load = system.get("load") or []
        rows.append(
            [
                name,
                fmt_percent(system.get("cpu_percent")),
                " ".join(f"{v:.2f}" for v in load) or "-",
                f"{fmt_bytes(memory.get('used_bytes'))}/{fmt_bytes(memory.get('total_bytes'))} "
                f"({fmt_percent(memory.get('used_percent'))})",
                f"{fmt_bytes(disk.get('used_bytes'))}/{fmt_bytes(disk.get('total_bytes'))} "
                f"({fmt_percent(disk.get('used_percent'))})",
                (host.get("release") or {}).get("version", "-"),
                str(host.get("requests", 0)),
            ]
        )
    out += ["", table(["HOST", "CPU", "LOAD 1/5/15", "MEMORY", "DISK", "RELEASE", "REQUESTS"], rows)]
    instance_rows = [
        [
            name,
            f"app-{i['port']}",
            str(i["pid"]),
            fmt_percent(i.get("cpu_percent")),
            fmt_bytes(i.get("rss_bytes")),
            f"{i.get('uptime_s', 0):.0f}s",
        ]
        for name, host in merged["hosts"].items()
        for i in host.get("instances") or []
    ]
    if instance_rows:
        out += ["", table(["HOST", "INSTANCE", "PID", "CPU", "RSS", "UPTIME"], instance_rows)]
    database = merged.get("database")
    if database:
        if database.get("error"):
            out += ["", f"Database: unavailable ({database['error']})"]
        else:
            connections = ", ".join(f"{state} {count}" for state, count in sorted(database["connections"].items()))
            out += [
                "",
                f"Database {database['name']}: {fmt_bytes(database['size_bytes'])}; connections: "
                f"{connections or 'none'}; cache hit ratio "
                f"{fmt_percent(None if database['cache_hit_ratio'] is None else 100 * database['cache_hit_ratio'], 2)}",
            ]
            if database.get("tables"):
                rows = [
                    [
                        t["table"],
                        fmt_bytes(t["total_bytes"]),
                        str(t["live_tuples"]),
                        str(t["dead_tuples"]),
                        (t.get("last_autovacuum") or t.get("last_vacuum") or "-")[:19],
                    ]
                    for t in database["tables"]
                ]
                out += [table(["TABLE", "SIZE", "LIVE", "DEAD", "LAST VACUUM"], rows)]
            statements = database.get("slowest_statements")
            if statements is None:
                out += [
                    "Slowest statements: pg_stat_statements is not installed (CREATE EXTENSION "
                    "pg_stat_statements; needs shared_preload_libraries)"
                ]
            elif statements:
                rows = [[f"{s['mean_ms']:.1f}", str(s["calls"]), s["query"][:80]] for s in statements]
                out += [table(["MEAN MS", "CALLS", "STATEMENT"], rows)]
    out += replication_lines(merged.get("replication"))
    return "\n".join(out)


def replication_lines(replication: dict | None) -> list[str]:
    """Streaming replication as `health` and `handoff` show it, with the lag in bytes and seconds."""
    if not replication:
        return []
    if replication.get("error"):
        return ["", f"Replication: not read ({replication['error']})"]
    if replication["status"] == "none":
        return ["", "Replication: no standby streams from the primary (invoke standby --host H builds one)"]
    return ["", f"Replication: {replication['status'].upper()}{replication_text(replication)}"]

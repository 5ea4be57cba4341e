"""Pure report builders: the stats table, the HTML history report, the on-call handoff, windows.

Everything takes plain data and returns text; the invoke tasks gather the data over SSH.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from deploy.ledger import entry_note
from deploy.ops.pitr.lag import archive_line
from deploy.stats_model import SLOW_QUERY_MS, TARGET_P99_MS

MAINTENANCE_START_HOUR = 2  # operation-plan §6.1: first Sunday of each month, 02:00-03:00 UTC
MAINTENANCE_HOURS = 1
SUNDAY = 6
# operation-plan §9.3: a full failover test every quarter, in the quarter's first window.
QUARTERLY_DRILL_MONTHS = (1, 4, 7, 10)
# The handoff flags a backup older than the weekly schedule (RPO 7 days, §9.2; an hour of slack for
# the backup's own run) and a restore test older than a month (§3.1, §9.3: the window's
# verify-backup; first Sundays are at most 35 days apart).
BACKUP_OVERDUE_AFTER = timedelta(days=7, hours=1)
VERIFICATION_OVERDUE_AFTER = timedelta(days=36)


# -- the maintenance window ------------------------------------------------------------------


def first_sunday(year: int, month: int) -> datetime:
    first = datetime(year, month, 1, tzinfo=UTC)
    return first + timedelta(days=(SUNDAY - first.weekday()) % 7)


def maintenance_window(year: int, month: int) -> tuple[datetime, datetime]:
    start = first_sunday(year, month).replace(hour=MAINTENANCE_START_HOUR)
    return start, start + timedelta(hours=MAINTENANCE_HOURS)


def next_maintenance_window(now: datetime) -> tuple[datetime, datetime]:
    """The window in progress, else the next one to start (this month's or next month's)."""
    now = now.astimezone(UTC)
    start, end = maintenance_window(now.year, now.month)
    if now < end:
        return start, end
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return maintenance_window(year, month)


def last_maintenance_window(now: datetime) -> tuple[datetime, datetime]:
    """The latest window that is over by `now` (this month's once it has ended, else last month's)."""
    now = now.astimezone(UTC)
    start, end = maintenance_window(now.year, now.month)
    if end <= now:
        return start, end
    year, month = (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)
    return maintenance_window(year, month)


def parse_maintenance_record(text: str) -> dict | None:
    """A host's state/maintenance-last.json as read over SSH: None before its first window,
    {"error": ...} when it cannot be read, else the record (deploy.ops.maintenance_model.run_record)."""
    text = text.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
        started = datetime.fromisoformat(record["started_at"])
        finished = datetime.fromisoformat(record["finished_at"])
    except (ValueError, TypeError, KeyError):
        return {"error": "the record is not readable JSON with its times (state/maintenance-last.json)"}
    return {**record, "started_at": started.astimezone(UTC), "finished_at": finished.astimezone(UTC)}


def maintenance_record_lines(hosts: list[dict], now: datetime) -> list[str]:
    """One line per reachable host: its last window, how it ended, and OVERDUE when it did not run
    in the latest window (cron's output is rotated away within 7 days; this record stays)."""
    window_start, _ = last_maintenance_window(now)
    lines = []
    for host in hosts:
        if host.get("unreachable"):
            continue
        record = host.get("maintenance")
        if record is None:
            lines.append(f"- {host['name']}: no maintenance window recorded yet")
            continue
        if "error" in record:
            lines.append(f"- {host['name']}: {record['error']}")
            continue
        started, finished = record["started_at"], record["finished_at"]
        outcome = "ok" if record.get("exit_status") == 0 else "FAILED"
        missed = (
            ""
            if started >= window_start
            else (f" — OVERDUE: the {window_start:%Y-%m-%d} window did not run here; run `invoke maintenance`")
        )
        lines.append(
            f"- {host['name']}: {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC, {outcome}: "
            f"{shorten(str(record.get('summary', '')), 300)}{missed}"
        )
    return lines or ["- No host answered."]


# -- formatting helpers ----------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fmt_percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def one_line(text: str) -> str:
    """Newlines and runs of blanks collapsed to one space (a list item or table cell is one line)."""
    return " ".join(str(text).split())


def shorten(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters: cut at a word boundary with an ellipsis and
    a backtick closed if the cut left one open, so Markdown around it still renders."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 2)]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    cut = cut.rstrip(" ,;:(")
    if cut.count("`") % 2:
        cut += "`"
    return cut + "…"


def md_cell(text: str, limit: int = 200) -> str:
    """A Markdown table cell: one line, bounded, with `|` escaped so it cannot split the row."""
    return shorten(text, limit).replace("|", "\\|")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


# -- the stats table -------------------------------------------------------------------------


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
            f"unparsable log lines: {requests['unparsable_lines']}",
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
    return "\n".join(out)


# -- the HTML history report -----------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT = 720, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 36
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]

Series = dict[str, list[tuple[datetime, float]]]


def svg_line_chart(title: str, series: Series, unit: str, reference: tuple[str, float] | None = None) -> str:
    """An inline SVG line chart: one <path> per series over time; `reference` draws a dashed target line."""
    points = [(t, v) for values in series.values() for t, v in values]
    esc = html.escape
    if not points:
        return (
            f'<svg class="chart" width="{CHART_WIDTH}" height="60" role="img" aria-label="{esc(title)}">'
            f'<text x="8" y="20" font-weight="bold">{esc(title)}</text>'
            f'<text x="8" y="44">no data yet</text></svg>'
        )
    times = [t for t, _ in points]
    values = [v for _, v in points] + ([reference[1]] if reference else [])
    t0, t1 = min(times), max(times)
    span = (t1 - t0).total_seconds() or 1.0
    low, high = min(0.0, min(values)), max(values)
    high = high if high > low else low + 1.0
    plot_w = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(t: datetime) -> float:
        offset = (t - t0).total_seconds() / span if t1 > t0 else 0.5
        return MARGIN_LEFT + offset * plot_w

    def y(v: float) -> float:
        return MARGIN_TOP + plot_h - (v - low) / (high - low) * plot_h

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
        f'height="{CHART_HEIGHT}" role="img" aria-label="{esc(title)}">',
        f'<text x="{MARGIN_LEFT}" y="18" font-weight="bold">{esc(title)}</text>',
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP + plot_h}" x2="{MARGIN_LEFT + plot_w}" '
        f'y2="{MARGIN_TOP + plot_h}" stroke="#999"/>',
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{MARGIN_TOP + plot_h}" stroke="#999"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = low + fraction * (high - low)
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{value:.4g} {esc(unit)}</text>'
        )
    parts.append(f'<text x="{MARGIN_LEFT}" y="{CHART_HEIGHT - 8}" font-size="11">{t0:%Y-%m-%d %H:%M}</text>')
    parts.append(
        f'<text x="{MARGIN_LEFT + plot_w}" y="{CHART_HEIGHT - 8}" font-size="11" '
        f'text-anchor="end">{t1:%Y-%m-%d %H:%M} UTC</text>'
    )
    if reference:
        label, value = reference
        parts.append(
            f'<line class="reference" x1="{MARGIN_LEFT}" y1="{y(value):.1f}" x2="{MARGIN_LEFT + plot_w}" '
            f'y2="{y(value):.1f}" stroke="#555" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT + plot_w - 4}" y="{y(value) - 4:.1f}" text-anchor="end" '
            f'font-size="11">{esc(label)}</text>'
        )
    legend_x = MARGIN_LEFT + 9 * len(title) + 24  # right of the bold title
    for index, (name, values_over_time) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        ordered = sorted(values_over_time)
        if ordered:
            commands = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(ordered))
            if len(ordered) == 1:  # a lone sample: a short tick so there is something to see
                commands += " l0.1,0"
            parts.append(
                f'<path class="series" data-series="{esc(name)}" d="{commands}" fill="none" '
                f'stroke="{colour}" stroke-width="2" stroke-linecap="round"/>'
            )
            for t, v in ordered:
                parts.append(
                    f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                    f"<title>{esc(name)} {t:%Y-%m-%d %H:%M}: {v:.4g} {esc(unit)}</title></circle>"
                )
        parts.append(
            f'<rect x="{legend_x}" y="9" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="18" font-size="11">{esc(name)}</text>'
        )
        legend_x += 14 + 7 * len(name) + 16
    parts.append("</svg>")
    return "".join(parts)


def _series(history: list[dict], getter) -> list[tuple[datetime, float]]:
    points = []
    for record in history:
        value = getter(record)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            points.append((datetime.fromisoformat(record["time"]), float(value)))
    return points


def history_charts(history: list[dict]) -> list[str]:
    """The four charts of the report, as SVG strings."""
    latency = {
        name: _series(history, lambda r, key=key: r.get(key))
        for name, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
    }
    errors = {
        "5xx error rate": _series(history, lambda r: 100 * r["error_rate"] if r.get("error_rate") is not None else None)
    }
    host_names = sorted({name for r in history for name in (r.get("hosts") or {})})
    resources: Series = {}
    for name in host_names:
        resources[f"{name} CPU"] = _series(
            history, lambda r, n=name: (r.get("hosts") or {}).get(n, {}).get("cpu_percent")
        )
        resources[f"{name} memory"] = _series(
            history, lambda r, n=name: (r.get("hosts") or {}).get(n, {}).get("memory_used_percent")
        )
    database = {
        "database size": _series(
            history, lambda r: r["database_bytes"] / 1024 / 1024 if r.get("database_bytes") is not None else None
        )
    }
    return [
        svg_line_chart(
            "Request latency percentiles", latency, "ms", (f"target p99 {TARGET_P99_MS:g} ms", TARGET_P99_MS)
        ),
        svg_line_chart("Error rate (5xx)", errors, "%"),
        svg_line_chart("Host CPU and memory", resources, "%"),
        svg_line_chart("Database size", database, "MiB"),
    ]


def history_html(history: list[dict], environment: str, generated_at: datetime, latest_text: str = "") -> str:
    """A self-contained page (inline CSS and SVG, no scripts, no external resources)."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(r['time'])}</td><td>{r.get('requests', 0)}</td>"
        f"<td>{fmt_percent(100 * (r.get('error_rate') or 0), 2)}</td><td>{fmt_ms(r.get('p50_ms'))}</td>"
        f"<td>{fmt_ms(r.get('p95_ms'))}</td><td>{fmt_ms(r.get('p99_ms'))}</td>"
        f"<td>{fmt_bytes(r.get('database_bytes'))}</td></tr>"
        for r in reversed(history[-50:])
    )
    charts = "\n".join(f"<figure>{chart}</figure>" for chart in history_charts(history))
    latest = f"<h2>Latest report</h2><pre>{esc(latest_text)}</pre>" if latest_text else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ClickNBack stats: {esc(environment)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
figure {{ margin: 1em 0; }} svg.chart {{ background: #fafafa; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }}
pre {{ background: #f4f4f4; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>ClickNBack stats: {esc(environment)}</h1>
<p>{len(history)} sample(s); generated {generated_at:%Y-%m-%d %H:%M} UTC by <code>invoke stats --html</code>.
Target: p99 &lt; {TARGET_P99_MS:g} ms (operation-plan §7.1).</p>
{charts}
<h2>History (newest first)</h2>
<table><tr><th>time</th><th>requests</th><th>5xx</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>database</th></tr>
{rows}</table>
{latest}
</body></html>
"""


# -- the on-call handoff ---------------------------------------------------------------------


def markdown_section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a Markdown text (up to the next `## `), stripped."""
    pattern = re.compile(rf"^##\s+{re.escape(heading)}\s*$(.*?)(?=^##\s|\Z)", re.MULTILINE | re.DOTALL | re.IGNORECASE)
    match = pattern.search(text)
    return match.group(1).strip() if match else ""


def known_issues_list(text: str) -> str:
    """The known issues file without its title and preamble: every `## ` section, one level down
    (they sit under the handoff's own `## Known issues`), links pointing into docs/."""
    start = text.find("\n## ")
    if start < 0:
        return ""
    return docs_links(re.sub(r"^## ", "### ", text[start + 1 :].strip(), flags=re.MULTILINE))


def docs_links(text: str) -> str:
    """`[x](rollback.md)` -> `[x](docs/rollback.md)`: the handoff is read outside docs/."""
    return re.sub(r"\]\(([a-z0-9-]+\.md)", r"](docs/\1", text)


def older_than(stamp: str | None, now: datetime, age: timedelta) -> bool:
    """Whether the ISO-8601 `stamp` is more than `age` before `now`; an unreadable stamp counts as old."""
    try:
        moment = datetime.fromisoformat(stamp or "")
    except ValueError:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return now - moment > age


def overdue_note(stamp: str | None, now: datetime, age: timedelta, what: str) -> str:
    """` — OVERDUE: <what>` when `stamp` is older than `age`, else nothing."""
    return f" — OVERDUE: {what}" if older_than(stamp, now, age) else ""


def handoff_markdown(data: dict) -> str:
    """The on-call handoff (operation-plan §8.2) from data the `handoff` task gathered."""
    lines = [
        f"# On-call handoff: {data['environment']}",
        "",
        f"Generated {data['generated_at']:%Y-%m-%d %H:%M} UTC by {data['operator']}.",
        "",
    ]
    lines += ["## Current release", ""]
    if data.get("unreachable"):
        # Before the table: a paragraph between its header and `|---|` rows would break it.
        lines += [
            f"**Could not read {', '.join(data['unreachable'])}**: the sections below show only "
            f"the hosts that answered.",
            "",
        ]
    lines += ["| host | release | version | commit | deployed at (UTC) |", "|---|---|---|---|---|"]
    for host in data["hosts"]:
        release = host.get("unreachable") or host.get("release") or "(nothing deployed)"
        lines.append(
            f"| {md_cell(host['name'])} | {md_cell(release)} | {md_cell(host.get('version') or '-')} "
            f"| {(host.get('commit') or '-')[:12]} | {md_cell(host.get('deployed_at') or '-')} |"
        )
    lines += ["", "## Health now", ""]
    for host in data["hosts"]:
        for probe in host.get("health", []):
            mark = "OK" if probe["ok"] else "FAIL"
            lines.append(f"- {mark} {host['name']} {probe['name']}: {shorten(probe['answer'], 200)}")
    if lines[-1] == "":
        lines.append("No health probes ran.")
    lines += ["", "## Recent deploys, rollbacks and restores", ""]
    entries = data.get("ledger") or []
    if entries:
        lines += [
            "| when (UTC) | kind | tag | outcome | duration | hosts | who | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in entries:
            lines.append(
                f"| {entry.when} | {entry.kind} | {md_cell(entry.tag)} | {entry.outcome} "
                f"| {entry.duration_s:.1f}s | {md_cell(', '.join(entry.hosts))} | {md_cell(entry.who)} "
                f"| {md_cell(entry_note(entry), 300)} |"
            )
    else:
        lines.append("No deploys, rollbacks or restores recorded in the ledger.")
    lines += ["", "## Incidents and resolutions", ""]
    troubled = [e for e in entries if e.outcome != "ok" or e.kind in ("rollback", "restore")]
    for entry in troubled:
        what = f"live restore from backup {entry.backup}" if entry.kind == "restore" else f"{entry.kind} of {entry.tag}"
        cause = entry.detail or (entry_note(entry) if entry.kind == "restore" else "")
        lines.append(f"- {entry.when}: {what} {entry.outcome}" + (f" — {shorten(cause, 600)}" if cause else ""))
    lines.append("- (add this shift's incidents by hand: what happened, what was done, how it ended)")
    lines += ["", "## Backups", ""]
    backups = data.get("backups") or {}
    if backups.get("error"):
        lines.append(f"- Could not list backups: {backups['error']}")
    else:
        last, verified = backups.get("last_backup"), backups.get("last_verified")
        now = data["generated_at"]
        if last:
            overdue = overdue_note(
                last["finished_at"],
                now,
                BACKUP_OVERDUE_AFTER,
                "older than the weekly schedule (RPO 7 days); see `shared/logs/cron.log` on "
                "the first host, then `invoke backup`",
            )
            lines.append(
                f"- Last backup: {last['backup_id']} at {last['finished_at']} "
                f"({fmt_bytes(last['size_bytes'])}){overdue}"
            )
        else:
            lines.append("- Last backup: NONE (run `invoke backup`)")
        if verified:
            outcome = "passed" if verified["ok"] else "FAILED"
            overdue = overdue_note(
                verified["verified_at"],
                now,
                VERIFICATION_OVERDUE_AFTER,
                "no restore test this month (the window's verify-backup); run `invoke verify-backup`",
            )
            lines.append(
                f"- Last verified restore: {verified['backup_id']} {outcome} at {verified['verified_at']}{overdue}"
            )
        else:
            lines.append("- Last verified restore: NONE (run `invoke verify-backup`)")
    if "wal_archive" in data:
        lines.append(f"- {archive_line(data['wal_archive'])[0]}")  # the line `invoke health` prints
    lines += ["", "## Last 24 hours", ""]
    requests = data.get("requests")
    if requests and requests.get("requests"):
        state = "within" if requests["p99_ok"] else "OVER"
        lines.append(
            f"- {requests['requests']} requests, error rate {fmt_percent(100 * requests['error_rate'], 2)} "
            f"({requests['server_errors']} 5xx), p99 {fmt_ms(requests['p99_ms'])} ms ({state} the "
            f"{requests['target_p99_ms']:g} ms target), {requests['slow_queries']} slow queries"
        )
        if requests.get("routes_over_target"):
            lines.append(f"- Routes over the p99 target: {', '.join(requests['routes_over_target'])}")
    elif requests is not None:
        lines.append("- No requests logged in the last 24 hours.")
    else:
        lines.append("- Request logs unavailable.")
    lines += ["", "## Known issues", "", data.get("known_issues") or "None recorded in docs/known-issues.md.", ""]
    start, end = data["next_window"]
    where = (
        f"cron runs the ops CLI's `maintenance` on every host, the database steps on "
        f"{data['maintenance_host']}; on that host it is `{data['maintenance_command']}`; "
        if data.get("maintenance_command")
        else "cron runs the ops CLI's `maintenance`; "
    )
    lines += ["## Last maintenance window", "", *maintenance_record_lines(data["hosts"], data["generated_at"]), ""]
    lines += [
        "## Next maintenance window",
        "",
        f"{start:%A %Y-%m-%d %H:%M}–{end:%H:%M} UTC (first Sunday of the month; {where}"
        f"`invoke maintenance` runs it by hand).",
        "",
    ]
    if start.month in QUARTERLY_DRILL_MONTHS:
        lines += [
            "The quarter's first window: the quarterly failover drill is due (plan §9.3), on staging, "
            "never production: `invoke drill --env staging` (docs/disaster-recovery.md).",
            "",
        ]
    lines += ["## Escalation path", "", docs_links(data.get("escalation") or "See docs/on-call.md."), ""]
    return "\n".join(lines)


def row_count_changes(before: dict[str, int], after: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(lost, grown): tables with fewer rows after a recovery (committed data gone: the drill fails)
    and tables with more (the live app kept working, e.g. the verification job)."""
    lost, grown = {}, {}
    for table in sorted(set(before) | set(after)):
        delta = after.get(table, 0) - before.get(table, 0)
        if delta < 0:
            lost[table] = delta
        elif delta > 0:
            grown[table] = delta
    return lost, grown


def steps_table(steps: Iterable[dict], rto_s: float | None = None) -> str:
    """Rows of `{"step", "status", "seconds", "detail"}` as a table (the drill and maintenance reports)."""
    steps = list(steps)
    rows = []
    total = 0.0
    for step in steps:
        total += step.get("seconds") or 0.0
        rows.append([step["step"], step["status"], f"{step.get('seconds') or 0.0:.1f}s", step.get("detail", "")])
    text = table(["STEP", "STATUS", "TIME", "DETAIL"], rows)
    if rto_s is not None:
        failed = next((step["step"] for step in steps if step.get("status") == "failed"), None)
        if failed is not None:
            # An unfinished recovery has no recovery time: never "within".
            verdict = f"FAILED at step {failed!r}; the recovery did not complete"
        else:
            verdict = "within" if total <= rto_s else "OVER"
        text += f"\ntotal {total:.1f}s against an RTO of {rto_s / 60:g} min ({rto_s:.0f}s): {verdict}"
    return text

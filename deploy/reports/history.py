"""The HTML history report: the stats of past runs as SVG line charts, self-contained."""

from __future__ import annotations

import html
from datetime import datetime

from deploy.ops.stats.model import TARGET_P99_MS
from deploy.reports.text import fmt_bytes, fmt_ms, fmt_percent

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

"""The HTML history report: the stats of past runs as SVG line charts, self-contained."""

from __future__ import annotations

import html
import math
from datetime import datetime

from deploy.ops.stats.model import TARGET_P99_MS
from deploy.reports.text import fmt_bytes, fmt_ms, fmt_percent

# The SVG's own coordinates: the page scales each chart to its column's width (viewBox, CSS
# width 100%), so a chart is as wide as the window, not a fixed 720 px.
CHART_WIDTH, PLOT_HEIGHT = 720, 176
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_BOTTOM = 64, 16, 36
TITLE_HEIGHT, LEGEND_ROW = 24, 16  # the title's line, then the legend's rows under it
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]

Series = dict[str, list[tuple[datetime, float]]]


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round axis ticks from `low` to at least `high`: steps of 1, 2, 2.5 or 5 times a power of
    ten, so labels read 0, 0.5, 1, 1.5 rather than thirds of an odd maximum."""
    high = high if high > low else low + 1.0  # a flat series (all 0) still gets an axis
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(first + len(ticks) * step)
    return ticks


def tick_label(value: float, ticks: list[float]) -> str:
    """As many decimals as the step needs (0.25 steps: 2; 0.5: 1; 5: none) and no trailing zeros:
    0, 0.5, 1, 1.5, never float noise like 1.398."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _legend_rows(names: list[str]) -> list[list[tuple[str, float]]]:
    """The legend items laid out in rows under the title, each (name, x), wrapped at the plot's width."""
    rows: list[list[tuple[str, float]]] = [[]]
    x, limit = float(MARGIN_LEFT), CHART_WIDTH - MARGIN_RIGHT
    for name in names:
        width = 14 + 7 * len(name) + 16
        if rows[-1] and x + width > limit:
            rows.append([])
            x = float(MARGIN_LEFT)
        rows[-1].append((name, x))
        x += width
    return rows


def svg_line_chart(title: str, series: Series, unit: str, reference: tuple[str, float] | None = None) -> str:
    """An inline SVG line chart: one <path> per series over time; `reference` draws a dashed target line.

    The legend has its own rows between the title and the plot, so neither overlaps the other
    however long the title or how many series there are.
    """
    points = [(t, v) for values in series.values() for t, v in values]
    esc = html.escape
    if not points:
        return (
            f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} 60" role="img" aria-label="{esc(title)}">'
            f'<text x="8" y="20" font-weight="bold">{esc(title)}</text>'
            f'<text x="8" y="44">no data yet</text></svg>'
        )
    times = [t for t, _ in points]
    values = [v for _, v in points] + ([reference[1]] if reference else [])
    t0, t1 = min(times), max(times)
    span = (t1 - t0).total_seconds() or 1.0
    ticks = nice_ticks(min(0.0, min(values)), max(values))
    low, high = ticks[0], ticks[-1]
    legend = _legend_rows(list(series))
    top = TITLE_HEIGHT + LEGEND_ROW * len(legend) + 12  # below the legend's last baseline
    height = top + PLOT_HEIGHT + MARGIN_BOTTOM
    plot_w, plot_h = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT, PLOT_HEIGHT

    def x(t: datetime) -> float:
        offset = (t - t0).total_seconds() / span if t1 > t0 else 0.5
        return MARGIN_LEFT + offset * plot_w

    def y(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height}" '
        f'role="img" aria-label="{esc(title)}">',
        f'<text x="{MARGIN_LEFT}" y="18" font-weight="bold">{esc(title)}</text>',
        f'<line x1="{MARGIN_LEFT}" y1="{top + plot_h}" x2="{MARGIN_LEFT + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
        f'<line x1="{MARGIN_LEFT}" y1="{top}" x2="{MARGIN_LEFT}" y2="{top + plot_h}" stroke="#999"/>',
    ]
    for value in ticks:
        parts.append(
            f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{tick_label(value, ticks)} {esc(unit)}</text>'
        )
    parts.append(f'<text x="{MARGIN_LEFT}" y="{height - 8}" font-size="11">{t0:%Y-%m-%d %H:%M}</text>')
    parts.append(
        f'<text x="{MARGIN_LEFT + plot_w}" y="{height - 8}" font-size="11" '
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
    legend_at = {
        name: (x_at, TITLE_HEIGHT + LEGEND_ROW * (row + 1)) for row, items in enumerate(legend) for name, x_at in items
    }
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
        legend_x, legend_y = legend_at[name]
        parts.append(
            f'<rect class="legend" x="{legend_x:.0f}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14:.0f}" y="{legend_y}" font-size="11">{esc(name)}</text>'
        )
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
figure {{ margin: 1em 0; max-width: 72em; }}
svg.chart {{ display: block; width: 100%; height: auto; background: #fafafa; border: 1px solid #ddd; }}
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

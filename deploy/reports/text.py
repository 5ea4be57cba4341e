"""Formatting shared by the reports: numbers, bytes, one-line shortening, Markdown tables."""

from __future__ import annotations


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

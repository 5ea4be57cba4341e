"""Step tables of the drill and the maintenance window, and the drill's row-count check."""

from __future__ import annotations

from collections.abc import Iterable

from deploy.reports.text import table


def row_count_changes(before: dict[str, int], after: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(lost, grown): tables with fewer rows after a recovery (committed data gone: the drill fails)
    and tables with more (the live app kept working, e.g. the verification job)."""
    lost, grown = {}, {}
    for name in sorted(set(before) | set(after)):
        delta = after.get(name, 0) - before.get(name, 0)
        if delta < 0:
            lost[name] = delta
        elif delta > 0:
            grown[name] = delta
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

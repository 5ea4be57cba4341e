"""The on-call handoff in Markdown, and the maintenance windows and overdue checks it reports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from deploy.ledger import entry_note
from deploy.ops.pitr.lag import archive_line
from deploy.reports.text import fmt_bytes, fmt_ms, fmt_percent, md_cell, shorten

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
    {"error": ...} when it cannot be read, else the record (deploy.ops.maintenance.model.run_record)."""
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
    troubled = [e for e in entries if e.outcome != "ok" or e.kind in ("rollback", "restore", "failover")]
    for entry in troubled:
        what = {"restore": f"live restore from backup {entry.backup}", "failover": "database failover"}.get(
            entry.kind, f"{entry.kind} of {entry.tag}"
        )
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

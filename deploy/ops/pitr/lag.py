"""The WAL archive's lag, read from pg_stat_archiver on the primary, and the rule that flags it.

The age of the last archived segment alone would flag an idle database (PostgreSQL switches
segments on archive_timeout only when something was written), so the rule also counts the closed
segments still waiting: lag matters when finished WAL is not in the archive yet.
"""

from __future__ import annotations

DEFAULT_THRESHOLD_SECONDS = 300

# Any role may read these: pg_stat_archiver and the current WAL position are not privileged.
LAG_SQL = """
SELECT current_setting('archive_mode') AS archive_mode,
       last_archived_wal,
       extract(epoch FROM now() - last_archived_time)::float8 AS archived_age_s,
       failed_count,
       last_failed_wal,
       extract(epoch FROM now() - last_failed_time)::float8 AS failed_age_s,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal
FROM pg_stat_archiver
"""

SEGMENTS_PER_LOG_ID = 0x100  # with the default 16 MiB segments


def segment_number(wal_name: str) -> int | None:
    """000000010000000A000000FF -> its position in the WAL stream (timeline ignored); None for a
    timeline history file (00000002.history), which the archiver ships after a promotion."""
    name = wal_name[:24]
    if len(name) != 24 or any(c not in "0123456789ABCDEFabcdef" for c in name):
        return None
    return int(name[8:16], 16) * SEGMENTS_PER_LOG_ID + int(name[16:24], 16)


def evaluate(row: dict, threshold_s: float = DEFAULT_THRESHOLD_SECONDS) -> dict:
    """ok / late / failing / off / standby, with the figures and one line that says why."""
    age = row.get("archived_age_s")
    report = {
        "last_archived_wal": row.get("last_archived_wal"),
        "age_s": round(age, 1) if age is not None else None,
        "failed_count": row.get("failed_count", 0),
        "threshold_s": threshold_s,
        "pending_segments": None,
    }
    if row.get("archive_mode") == "off":
        return {**report, "status": "off", "message": "archive_mode is off: no WAL is archived (run provision)"}
    current, last = row.get("current_wal"), row.get("last_archived_wal")
    if current is None:
        return {**report, "status": "standby", "message": "in recovery: the primary archives"}
    current_number, last_number = segment_number(current), segment_number(last or "")
    pending = None if current_number is None or last_number is None else max(0, current_number - last_number - 1)
    report["pending_segments"] = pending
    failed_age = row.get("failed_age_s")
    failing = failed_age is not None and (age is None or failed_age < age)
    if failing:
        return {
            **report,
            "status": "failing",
            "message": f"archive_command is failing (last on {row['last_failed_wal']})",
        }
    if pending == 0:
        return {**report, "status": "ok", "message": "every finished segment is archived"}
    if age is None or age > threshold_s:
        shown = "never" if age is None else f"{age:.0f}s ago"
        return {
            **report,
            "status": "late",
            "message": f"{pending if pending is not None else 'some'} finished segment(s) waiting; "
            f"last archived {shown} (threshold {threshold_s:.0f}s)",
        }
    waiting = f"{pending} segment(s) on their way, last archived" if pending is not None else f"last archived {last}"
    return {**report, "status": "ok", "message": f"{waiting} {age:.0f}s ago"}


def summary_line(report: dict) -> str:
    flag = "OK  " if report["status"] in ("ok", "standby") else "FAIL"
    return f"{flag} WAL archive: {report['status']}: {report['message']}"


def archive_line(report: dict | None) -> tuple[str, bool]:
    """The health/handoff line for `archive-lag`'s JSON, and whether it is a failure.

    Off (PITR not set up) is a warning, not a failure: the weekly dumps still stand.
    """
    if report is None:
        return "WARN WAL archive: lag unknown (no release deployed, or archive-lag failed)", False
    if report.get("error"):
        return f"WARN WAL archive: lag unknown: {report['error']}", False
    replication = replication_text(report.get("replication"))
    if report["status"] == "off":
        return f"WARN WAL archive: {report['message']}{replication}", False
    late_standby = (report.get("replication") or {}).get("status") == "late"
    return summary_line(report) + replication, report["status"] not in ("ok", "standby") or late_standby


def replication_text(replication: dict | None) -> str:
    """`; standby s1 streaming sync, lag 0 B / 0.0 s` for each standby the primary sees."""
    if not replication or not replication.get("standbys"):
        return ""
    parts = []
    for standby in replication["standbys"]:
        lag_bytes = "?" if standby.get("lag_bytes") is None else f"{standby['lag_bytes']} B"
        parts.append(
            f"standby {standby['application_name']} {standby['state']} {standby['sync_state']}, "
            f"lag {lag_bytes} / {standby.get('lag_s') or 0:.1f} s" + (" LATE" if standby["status"] == "late" else "")
        )
    return "; " + "; ".join(parts)

"""The archive-lag rule: flag finished WAL that is not archived in time, never an idle database."""

from __future__ import annotations

import pytest

from deploy.ops.pitr.lag import evaluate, segment_number, summary_line

ROW = {
    "archive_mode": "on",
    "last_archived_wal": "000000010000000000000010",
    "archived_age_s": 30.0,
    "failed_count": 0,
    "last_failed_wal": None,
    "failed_age_s": None,
    "current_wal": "000000010000000000000011",
}


def test_segment_numbers_cross_log_ids() -> None:
    assert segment_number("0000000100000001000000FF") - segment_number("0000000100000001000000FE") == 1
    assert segment_number("000000010000000200000000") - segment_number("0000000100000001000000FF") == 1


def test_an_idle_database_is_ok_however_old_its_last_segment() -> None:
    report = evaluate({**ROW, "archived_age_s": 86400.0}, threshold_s=300)
    assert report["status"] == "ok" and report["pending_segments"] == 0
    assert summary_line(report).startswith("OK")


def test_finished_segments_waiting_past_the_threshold_are_late() -> None:
    report = evaluate({**ROW, "archived_age_s": 400.0, "current_wal": "000000010000000000000014"}, threshold_s=300)
    assert report["status"] == "late" and report["pending_segments"] == 3
    assert summary_line(report).startswith("FAIL") and "threshold 300s" in report["message"]


def test_waiting_segments_inside_the_threshold_are_on_their_way() -> None:
    assert evaluate({**ROW, "current_wal": "000000010000000000000013"}, 300)["status"] == "ok"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"archive_mode": "off"}, "off"),
        ({"failed_count": 2, "last_failed_wal": "000000010000000000000011", "failed_age_s": 5.0}, "failing"),
        ({"current_wal": None}, "standby"),
        ({"last_archived_wal": None, "archived_age_s": None}, "late"),
    ],
)
def test_off_failing_standby_and_never_archived(change: dict, status: str) -> None:
    assert evaluate({**ROW, **change}, 300)["status"] == status


def test_an_old_failure_followed_by_successes_is_ok() -> None:
    row = {**ROW, "failed_count": 1, "last_failed_wal": "00000001000000000000000A", "failed_age_s": 900.0}
    assert evaluate(row, 300)["status"] == "ok"


def test_health_and_handoff_warn_when_pitr_is_off_or_unknown_and_fail_when_late() -> None:
    from deploy.ops.pitr.lag import archive_line

    assert archive_line(None) == ("WARN WAL archive: lag unknown (no release deployed, or archive-lag failed)", False)
    assert archive_line({"error": "boom"})[1] is False
    assert archive_line(evaluate({**ROW, "archive_mode": "off"}))[0].startswith("WARN")
    line, failed = archive_line(evaluate({**ROW, "archived_age_s": 900.0, "current_wal": "000000010000000000000015"}))
    assert failed and line.startswith("FAIL")
    assert archive_line(evaluate(ROW)) == (summary_line(evaluate(ROW)), False)


def test_the_line_names_each_standby_with_its_lag_and_fails_on_a_late_one() -> None:
    from deploy.ops.pitr.lag import archive_line
    from deploy.ops.pitr.replication import lag_report

    standby = {"application_name": "s1", "state": "streaming", "sync_state": "sync", "lag_bytes": 512, "lag_s": 0.25}
    report = {**evaluate(ROW), "replication": lag_report([standby])}
    line, failed = archive_line(report)
    assert line.endswith("; standby s1 streaming sync, lag 512 B / 0.2 s") and not failed
    late = {**evaluate(ROW), "replication": lag_report([{**standby, "lag_s": 600.0}])}
    line, failed = archive_line(late)
    assert failed and line.endswith("LATE")


def test_a_history_file_last_archived_after_a_promotion_is_not_a_segment() -> None:
    """After a point-in-time restore promotes, the archiver ships 00000002.history: the lag is read
    from its age, not from a segment number it does not have."""
    row = {
        "archive_mode": "on",
        "last_archived_wal": "00000002.history",
        "archived_age_s": 3.0,
        "failed_count": 0,
        "current_wal": "000000020000000000000007",
    }
    report = evaluate(row)
    assert report["status"] == "ok" and report["pending_segments"] is None
    assert report["message"] == "last archived 00000002.history 3s ago"

"""The cron.log line format of deploy/ops/stamp.py (its process behaviour: tests/integration/deploy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from deploy.ops.stamp import exit_status, stamped

NOON = datetime(2026, 1, 4, 12, 0, 1, 999_999, tzinfo=UTC)


def test_a_line_gets_its_utc_second_and_one_newline():
    assert stamped(b"backup: done\n", NOON) == b"2026-01-04T12:00:01Z backup: done\n"
    assert stamped(b"no newline at the end", NOON) == b"2026-01-04T12:00:01Z no newline at the end\n"
    assert stamped(b"crlf\r\n", NOON) == b"2026-01-04T12:00:01Z crlf\n"


def test_a_host_clock_in_another_zone_still_stamps_utc():
    paris = NOON.astimezone(timezone(timedelta(hours=1)))
    assert stamped(b"x", paris) == b"2026-01-04T12:00:01Z x\n"


def test_the_exit_status_is_the_shell_s():
    assert (exit_status(0), exit_status(3), exit_status(-9), exit_status(-15)) == (0, 3, 137, 143)

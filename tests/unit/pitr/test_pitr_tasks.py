"""The laptop side of PITR: requests checked before any SSH, and the drill's random target time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from deploy.commands.pitr import DEBIAN
from deploy.ops.pitr.barman import PitrSettingsError
from deploy.tasks.pitr import PitrTaskError, live_steps, random_recent_time, restore_request

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_time_with_a_zone_is_normalised_and_latest_is_none() -> None:
    assert restore_request("2026-12-06T12:15:00+02:00", False, None) == "2026-12-06T12:15:00+02:00"
    assert restore_request(None, True, None) is None


@pytest.mark.parametrize(
    ("to_time", "to_latest", "backup", "target", "words"),
    [
        ("2026-12-06T10:00:00Z", True, None, False, "not both"),
        (None, True, "20261206T010000Z", False, "pick one"),
        (None, True, None, "copy", "names a database for a dump"),
        ("2999-01-01T00:00:00Z", False, None, False, "in the future"),
    ],
)
def test_ambiguous_or_unsafe_requests_are_refused(to_time, to_latest, backup, target, words) -> None:
    with pytest.raises(PitrTaskError, match=words):
        restore_request(to_time, to_latest, backup, target)


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(PitrSettingsError, match="time zone"):
        restore_request("2026-12-06T10:00:00", False, None)


def test_the_drills_time_lies_between_the_oldest_backup_and_the_archived_marker() -> None:
    backups = [
        {"backup_id": "a", "status": "DONE", "end_time": "2026-12-05T01:30:00+00:00"},
        {"backup_id": "b", "status": "FAILED", "end_time": "2026-11-01T01:30:00+00:00"},
    ]
    rng = random.Random(7)
    for _ in range(200):
        moment = random_recent_time(backups, NOW, rng)
        assert datetime(2026, 12, 5, 1, 30, 1, tzinfo=UTC) <= moment <= NOW


def test_right_after_the_first_base_backup_the_drill_restores_to_the_marker() -> None:
    """barman's end time drops the fraction: a target in that same second could precede the
    backup's consistent point, so the earliest target is the next second, or the marker itself."""
    backups = [{"backup_id": "a", "status": "DONE", "end_time": "Sun Dec  6 11:59:59 2026"}]
    assert random_recent_time(backups, NOW, random.Random(3)) == NOW
    marker = NOW + timedelta(seconds=30, microseconds=5)
    assert NOW <= random_recent_time(backups, marker, random.Random(3)) <= marker


def test_the_drill_looks_back_a_week_at_most_and_needs_a_backup() -> None:
    old = [{"backup_id": "a", "status": "DONE", "end_time": "2026-10-01T00:00:00+00:00"}]
    assert random_recent_time(old, NOW, random.Random(1)) >= NOW - timedelta(days=7)
    with pytest.raises(PitrTaskError, match="no finished base backup"):
        random_recent_time([], NOW, random.Random(1))


def test_a_live_restore_stops_the_app_before_the_cluster_and_keeps_the_old_folder() -> None:
    steps = live_steps("2026-12-06T10:15:00+00:00", "db", ["db", "app2"], DEBIAN)
    text = "\n".join(steps)
    assert steps[0].startswith("take the deploy lock on db, app2")
    order = ["archive the current WAL", "stop the app", "systemctl stop", "aside", "systemctl start", "promoted"]
    positions = [text.index(words) for words in order + ["wallet invariants", "behind the health gate"]]
    assert positions == sorted(positions)
    assert "/var/lib/postgresql/15/main.before-pitr-STAMP" in text and "discard-restore" in steps[-2]
    assert steps[-1].endswith("take a base backup on the new timeline")

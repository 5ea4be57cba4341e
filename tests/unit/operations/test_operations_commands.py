"""Golden strings of the remote commands the operations tasks send, and the backup summary."""

from __future__ import annotations

import re

import pytest

from deploy.commands import Layout
from deploy.commands import operations as ocmd
from deploy.tasks.operations import backup_summary

LAYOUT = Layout("/srv/clicknback")


def test_stats_and_archive_args():
    assert ocmd.stats_args(24.0, with_database=True) == ["stats", "--window-hours", "24"]
    assert ocmd.stats_args(1.5, with_database=False) == ["stats", "--window-hours", "1.5", "--no-database"]
    assert ocmd.stats_args(24, with_database=True, only_logs=True) == ["stats", "--window-hours", "24", "--only-logs"]
    assert ocmd.stats_args(2, with_database=False, end="2026-01-02T00:00:00+00:00") == [
        "stats",
        "--window-hours",
        "2",
        "--end",
        "2026-01-02T00:00:00+00:00",
        "--no-database",
    ]
    assert ocmd.archive_logs_args(dry_run=True) == ["archive-logs", "--dry-run"]
    assert ocmd.archive_logs_args(dry_run=False) == ["archive-logs"]


def test_maintenance_args_first_host_and_others():
    assert ocmd.maintenance_args(True, None, 20.0, []) == ["maintenance", "--budget", "20"]
    assert ocmd.maintenance_args(False, "02:55", None, ["reindex"]) == [
        "maintenance",
        "--until",
        "02:55",
        "--skip",
        "reindex",
        "--no-shared-steps",
    ]


@pytest.mark.parametrize(
    ("until", "budget", "skip", "message"),
    [
        ("25:00", None, [], "--until '25:00': expected HH:MM (UTC), 00:00 to 23:59"),
        ("3pm", None, [], "--until '3pm': expected HH:MM"),
        ("02:60", None, [], "--until '02:60'"),
        ("02:30", 10.0, [], "--until and --budget are alternatives"),
        (None, None, ["vacuum"], "--skip 'vacuum': not a step (steps: vacuum-analyze, reindex"),
    ],
)
def test_maintenance_args_refuse_bad_input_before_any_ssh(until, budget, skip, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ocmd.maintenance_args(True, until, budget, skip)


def test_read_release_json_command():
    assert ocmd.read_release_json_command(LAYOUT) == "cat /srv/clicknback/current/RELEASE.json 2>/dev/null || true"


def test_read_maintenance_record_command_reads_the_file_the_maintenance_run_writes():
    from deploy.ops.maintenance.model import record_path

    assert ocmd.read_maintenance_record_command(LAYOUT) == (
        "cat /srv/clicknback/state/maintenance-last.json 2>/dev/null || true"
    )
    assert str(record_path(LAYOUT.env_file)) == LAYOUT.maintenance_record


def test_crash_app_command():
    ctl = "supervisorctl -c /srv/clicknback/supervisor/supervisord.conf pid"
    assert ocmd.crash_app_command(LAYOUT, (8001, 8002)) == (
        f'victims="$(cat /srv/clicknback/supervisor/supervisord.pid 2>/dev/null) $({ctl} app-8001 2>/dev/null) '
        f"$({ctl} app-8002 2>/dev/null)\"; killed=''; for pid in $victims; do case \"$pid\" in *[!0-9]*|'') "
        'continue;; esac; if kill -9 "$pid" 2>/dev/null; then killed="$killed $pid"; fi; done; echo "killed:$killed"'
    )


def test_wait_commands():
    assert ocmd.wait_until_gone_command(LAYOUT, 5) == (
        "deadline=$(( $(date +%s) + 5 )); while supervisorctl -c /srv/clicknback/supervisor/supervisord.conf pid"
        ' >/dev/null 2>&1; do [ "$(date +%s)" -ge "$deadline" ] && exit 1; sleep 0.2; done'
    )
    command = ocmd.wait_for_database_command(LAYOUT, "20261127T000000Z-v1", 60)
    assert command.startswith(
        "deadline=$(( $(date +%s) + 60 )); until ( cd /srv/clicknback/releases/"
        "20261127T000000Z-v1 && ENV_FILE=/srv/clicknback/shared/.env ./.venv/bin/python -m "
        "deploy.ops.cli migrate --status ) >/dev/null 2>&1; do"
    )
    assert command.endswith("sleep 0.5; done; echo database-up")


def test_backup_summary_picks_newest_backup_and_newest_verification():
    listing = {
        "complete": [
            {"backup_id": "B3", "finished_at": "3", "size_bytes": 1, "verification": None},
            {
                "backup_id": "B2",
                "finished_at": "2",
                "size_bytes": 1,
                "verification": {"ok": False, "verified_at": "2026-11-26T00:00:00+00:00"},
            },
            {
                "backup_id": "B1",
                "finished_at": "1",
                "size_bytes": 1,
                "verification": {"ok": True, "verified_at": "2026-11-25T00:00:00+00:00"},
            },
        ],
        "incomplete": [],
    }
    summary = backup_summary(listing)
    assert summary["last_backup"]["backup_id"] == "B3"
    assert summary["last_verified"] == {"ok": False, "verified_at": "2026-11-26T00:00:00+00:00", "backup_id": "B2"}
    assert backup_summary({"complete": []}) == {"last_backup": None, "last_verified": None}

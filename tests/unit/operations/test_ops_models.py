"""Archival rules, the maintenance window's end and budget, and the dependency audit."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from deploy.ops import logs
from deploy.ops.logs import model as logs_model
from deploy.ops.maintenance import model as mm

UTC = UTC
NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def test_rotated_names_and_times():
    assert logs_model.rotated_time("app-8001.2026-11-20_00-00-00_000000.log") == datetime(2026, 11, 20, tzinfo=UTC)
    assert logs_model.rotated_time("/x/app-8001.2026-11-20_00-00-00_123456.log.gz").microsecond == 123456
    for name in ("app-8001.log", "cron.log", "app-8001.2026-11-20.log", "nginx-error.log", "app-8001.log.gz"):
        assert logs_model.rotated_time(name) is None
    names = [
        "app-8001.log",
        "app-8001.2026-11-20_00-00-00_000000.log",
        "cron.log",
        "app-8002.2026-11-19_00-00-00_000000.log.gz",
    ]
    assert logs_model.rotated_files(names) == [names[1], names[3]]
    assert logs_model.rotated_time("cron.2026-11-20_00-00-00_000000.log.gz") == datetime(2026, 11, 20, tzinfo=UTC)


def test_the_plain_logs_rotate_into_the_archived_form_when_not_empty():
    rotations = logs_model.plain_log_rotations(
        {
            "nginx-access.log": 120,
            "nginx-error.log": 0,
            "cron.log": 7,
            "switch.log": 3,
            "app-8001.log": 9,
            "ops-errors.log": 1,
        },
        NOW,
    )
    stamp = "2026-11-27_01-00-00_000000"
    assert [(r.live, r.rotated, r.method) for r in rotations] == [
        ("nginx-access.log", f"nginx-access.{stamp}.log", "reopen"),  # nginx reopens: nothing is lost
        ("cron.log", f"cron.{stamp}.log", "copy-truncate"),  # written with >>, by archive-logs itself too
        ("switch.log", f"switch.{stamp}.log", "copy-truncate"),
        ("ops-errors.log", f"ops-errors.{stamp}.log", "copy-truncate"),
    ]  # an empty or missing log is left alone; the app's own are loguru's to rotate
    # Rotated, they are archived, kept locally and expire in the bucket like the app's logs.
    names = [r.rotated for r in rotations] + ["nginx-access.log", "cron.log"]
    assert logs_model.rotated_files(names) == sorted(r.rotated for r in rotations)
    assert logs_model.archive_key("logs/", "app1", f"cron.{stamp}.log") == f"logs/app1/cron.{stamp}.log.gz"
    assert logs_model.keep_locally(f"nginx-access.{stamp}.log.gz", NOW + timedelta(days=8), 7) is False
    assert logs_model.expired_keys(
        [logs_model.BucketObject(f"logs/a/switch.{stamp}.log.gz", 1, NOW)], NOW + timedelta(days=31), 30
    ) == [f"logs/a/switch.{stamp}.log.gz"]
    assert logs_model.rotated_time(f"evil.{stamp}.log") is None


def test_archive_key_and_local_keep():
    name = "app-8001.2026-11-20_00-00-00_000000.log"
    assert logs_model.archive_key("logs", "app1", name) == f"logs/app1/{name}.gz"
    assert logs_model.archive_key("/logs/", "app1", name + ".gz") == f"logs/app1/{name}.gz"
    assert logs_model.keep_locally(name, NOW, 8) is True  # 7 days 1 hour old
    assert logs_model.keep_locally(name, NOW, 7) is False
    assert logs_model.keep_locally("app-8001.log", NOW, 7) is False
    assert logs_model.host_label_ok("host-2.a_b") and not logs_model.host_label_ok("../x")


def test_bucket_retention_by_name_time_then_last_modified():
    objects = [
        logs_model.BucketObject("logs/a/app-8001.2026-10-28_00-59-59_000000.log.gz", 1, NOW),  # 30 days + 1 s
        logs_model.BucketObject("logs/a/app-8001.2026-10-28_01-00-00_000000.log.gz", 1, NOW),  # exactly 30 days
        logs_model.BucketObject("logs/a/other.gz", 1, NOW - timedelta(days=31)),
        logs_model.BucketObject("logs/a/recent.gz", 1, NOW - timedelta(days=1)),
    ]
    assert logs_model.expired_keys(objects, NOW, 30) == [
        "logs/a/app-8001.2026-10-28_00-59-59_000000.log.gz",
        "logs/a/other.gz",
    ]


def test_compress_is_deterministic_and_removes_the_raw_file(tmp_path):
    raw = tmp_path / "app-8001.2026-11-20_00-00-00_000000.log"
    raw.write_text('{"a": 1}\n' * 100)
    first = logs.compress(raw)
    assert not raw.exists() and first.name.endswith(".log.gz")
    data = first.read_bytes()
    raw.write_text('{"a": 1}\n' * 100)
    assert logs.compress(raw).read_bytes() == data
    assert gzip.decompress(data) == b'{"a": 1}\n' * 100
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "until, budget, expected",
    [
        (None, None, datetime(2026, 11, 27, 3, 0, tzinfo=UTC)),
        ("02:30", None, datetime(2026, 11, 27, 2, 30, tzinfo=UTC)),
        ("00:30", None, datetime(2026, 11, 28, 0, 30, tzinfo=UTC)),  # already past today: tomorrow's
        (None, 15, NOW + timedelta(minutes=15)),
    ],
)
def test_window_end(until, budget, expected):
    assert mm.window_end(NOW, until, budget) == expected


@pytest.mark.parametrize("until, budget", [("25:00", None), ("3", None), (None, 0), (None, -5)])
def test_window_end_rejects_bad_values(until, budget):
    with pytest.raises(ValueError):
        mm.window_end(NOW, until, budget)


def test_fits_keeps_a_safety_margin():
    end = NOW + timedelta(seconds=100)
    assert mm.fits(NOW, end, 70)
    assert not mm.fits(NOW, end, 71)
    assert mm.seconds_left(NOW, end) == 70.0
    assert mm.seconds_left(end, end) == 0.0


def test_exit_status():
    ok = mm.StepResult("a", "ok", 1.0, "")
    assert mm.exit_status([ok, mm.StepResult("b", "skipped", 0.0, "")]) == 0
    assert mm.exit_status([ok, mm.StepResult("c", "failed", 1.0, "")]) == 1
    assert mm.exit_status([ok, mm.StepResult("d", "partial", 1.0, "")]) == 0


def test_an_audit_that_did_not_run_is_skipped_never_ok():
    assert mm.audit_status(pip_audit_ran=False, vulnerabilities=0, advisory_findings=0) == "skipped"
    assert mm.audit_status(pip_audit_ran=True, vulnerabilities=0, advisory_findings=0) == "ok"
    # A finding fails it whichever source found it, even when pip-audit could not run.
    assert mm.audit_status(pip_audit_ran=False, vulnerabilities=0, advisory_findings=1) == "failed"
    assert mm.audit_status(pip_audit_ran=True, vulnerabilities=2, advisory_findings=0) == "failed"


def test_summary_line_names_failed_partial_and_skipped_steps_apart():
    results = [
        mm.StepResult("vacuum-analyze", "ok", 1.0, ""),
        mm.StepResult("reindex", "partial", 2.0, ""),
        mm.StepResult("verify-backup", "skipped", 0.0, ""),
        mm.StepResult("dependency-audit", "skipped", 0.0, ""),
    ]
    assert mm.summary_line(results, 3.04) == (
        "maintenance: done in 3.0s; 1 of 4 steps ok; failed: none; partial: reindex; "
        "skipped: verify-backup, dependency-audit"
    )
    failed = mm.summary_line([mm.StepResult("check-wallets", "failed", 1.0, "")], 1.0)
    assert "0 of 1 steps ok; failed: check-wallets; partial: none; skipped: none" in failed


def test_the_run_record_lives_beside_the_ledger_of_a_deployed_host_only(tmp_path):
    assert mm.record_path(None) is None and mm.record_path("") is None  # a developer's run records nothing
    root = tmp_path / "srv" / "clicknback"
    assert mm.record_path(str(root / "shared" / ".env")) == root / "state" / "maintenance-last.json"


def test_a_run_record_says_when_how_it_ended_and_each_step(tmp_path):
    from deploy.reports import parse_maintenance_record

    results = [mm.StepResult("vacuum-analyze", "ok", 1.234, ""), mm.StepResult("check-wallets", "failed", 2.0, "1 off")]
    started = datetime(2026, 11, 1, 2, 0, 3, 400000, tzinfo=UTC)
    summary = mm.summary_line(results, 3.3)
    record = mm.run_record(started, started + timedelta(seconds=4), results, True, summary)
    assert record["started_at"] == "2026-11-01T02:00:03+00:00" and record["finished_at"] == "2026-11-01T02:00:07+00:00"
    assert record["exit_status"] == 1 and record["summary"] == summary.removeprefix("maintenance: ")
    assert record["steps"][1] == {"step": "check-wallets", "status": "failed", "seconds": 2.0, "detail": "1 off"}
    unreachable = mm.run_record(started, started, [], False, "cannot reach the database: OSError: refused")
    assert unreachable["exit_status"] == 1 and unreachable["steps"] == []

    path = tmp_path / "state" / "maintenance-last.json"
    mm.write_record(path, record)  # creates the folder on a host whose state/ is missing
    mm.write_record(path, unreachable)  # replaces the last one
    assert [p.name for p in path.parent.iterdir()] == ["maintenance-last.json"]  # no .partial left behind
    assert parse_maintenance_record(path.read_text())["summary"] == "cannot reach the database: OSError: refused"


def test_parse_lock_and_versions():
    pins = mm.parse_lock(
        "# comment\nSanic==25.12.1\npython_dateutil==2.9.0.post0 \\\n  --hash=sha256:x\n"
        "uvicorn[standard]==0.30.0\n-e .\nnot-pinned>=1\n"
    )
    assert pins == {"sanic": "25.12.1", "python-dateutil": "2.9.0.post0", "uvicorn": "0.30.0"}
    assert mm.version_key("1.0") == mm.version_key("1.0.0")
    assert mm.version_key("1.0rc1") < mm.version_key("1.0") < mm.version_key("1.0.post1") < mm.version_key("1.0.1")
    assert mm.satisfies("1.4.1", ">=1.0,<1.4.2") and not mm.satisfies("1.4.2", ">=1.0,<1.4.2")
    assert mm.satisfies("2.0", "==2.0.0") and mm.satisfies("2.0", "!=2.1")
    with pytest.raises(ValueError):
        mm.satisfies("1.0", "~=1.0")


def test_check_advisories_matches_affected_pins_only():
    advisories = [
        {"id": "TEST-1", "package": "Sanic", "affected": ["<25.12.1"], "fixed_in": "25.12.1", "severity": "high"},
        {
            "id": "TEST-2",
            "package": "py_jwt",
            "affected": [">=2.0,<2.16"],
            "fixed_in": "2.16.0",
            "severity": "critical",
            "summary": "bad",
        },
        {"id": "TEST-3", "package": "absent", "affected": ["<99"]},
    ]
    findings = mm.check_advisories({"sanic": "25.12.1", "py-jwt": "2.15.1"}, advisories)
    assert [f.advisory for f in findings] == ["TEST-2"]
    assert findings[0].describe() == "py-jwt==2.15.1: TEST-2 (critical) bad; fixed in 2.16.0"


def test_shipped_advisory_file_is_valid():
    updated, advisories = mm.load_advisories(__import__("deploy.ops.maintenance", fromlist=["x"]).ADVISORIES)
    assert updated
    for advisory in advisories:
        assert {"id", "package", "affected"} <= advisory.keys()


def test_pip_audit_command_and_summary():
    assert mm.pip_audit_command(["pip-audit"], "requirements.lock") == [
        "pip-audit",
        "-r",
        "requirements.lock",
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
    ]
    output = json.dumps(
        {
            "dependencies": [
                {"name": "a", "version": "1", "vulns": [{"id": "PYSEC-X", "fix_versions": ["2"]}]},
                {"name": "b", "version": "1", "vulns": []},
            ]
        }
    )
    assert mm.summarise_pip_audit(output) == (1, ["a==1: PYSEC-X (fixed in 2)"])


def test_dependency_audit_without_pip_audit_reports_skipped_with_the_reason(tmp_path, monkeypatch, capsys):
    from deploy.ops import maintenance

    (tmp_path / "requirements.lock").write_text("sanic==25.12.1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no pip-audit on it
    status, detail = maintenance.dependency_audit(timeout=5)
    assert status == "skipped"
    assert detail.startswith("pip-audit: skipped: not installed on this host")
    assert "advisory file" in detail


class _EmptyBucket:
    bucket = "b"

    def list_objects(self, prefix):
        return []


def test_archive_dry_run_counts_what_it_would_do_and_changes_nothing(tmp_path):
    logs_dir = tmp_path / "shared" / "logs"
    logs_dir.mkdir(parents=True)
    for name in ("nginx-access.log", "nginx-error.log", "cron.log"):
        (logs_dir / name).write_text("a line\n")
    (logs_dir / "switch.log").write_text("")  # empty: nothing to rotate
    old = (NOW - timedelta(days=30)).strftime(logs_model.STAMP_FORMAT)
    (logs_dir / f"app-8001.{old}.log").write_text("old\n")
    before = sorted(p.name for p in logs_dir.iterdir())
    settings = logs.ArchiveSettings(logs_dir, "host-2", "logs/", 7, 30, store=_EmptyBucket())
    out = io.StringIO()
    summary = logs.archive(settings, NOW, dry_run=True, out=out)
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("archive-logs: would rotate ") for line in lines[:-1]) == 3
    assert lines[-1] == (
        "archive-logs: would rotate 3, would compress 1, would upload 1 (or find them already "
        "archived), would delete locally 1, would expire 0 in the bucket, 0 failed "
        "(dry run: nothing changed)"
    )
    assert summary.rotated == [] and sorted(p.name for p in logs_dir.iterdir()) == before

"""What the deploy toolkit tells the operator and records: gate-failure causes for the ledger,
tag advice, the bad-rollback-target warning, runnable host commands, live-restore ledger lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy import commands as cmd
from deploy import ledger
from deploy.errors import DeployError
from deploy.gate import DETAIL_LIMIT, GateFailed, gate_failure_detail, log_cause, supervisor_state
from deploy.inventory import parse_inventory
from deploy.local_git import missing_tag_message
from deploy.lock import FREEZE, describe_holder, freeze_message, held_message, holder_record
from deploy.rollout import bad_target_warning, choose_rollback_target
from deploy.session import host_ops_command
from deploy.tasks.backup import new_safety_backup, restore_ledger_entry

TRACEBACK = """\
{"event": "app.start", "level": "info"}
Traceback (most recent call last):
  File "/srv/cnb/current/server/__main__.py", line 3, in <module>
    from server.app import create_app
  File "/srv/cnb/current/server/app.py", line 12
    def broken(:
               ^
SyntaxError: invalid syntax

"""


def host():
    text = """
[defaults]
ssh_user = "clicknback"
deploy_root = "/srv/cnb"
[environments.prod]
hosts = [{ name = "host-3", address = "10.0.0.3" }]
"""
    return parse_inventory(text).environment("prod").hosts[0]


def test_log_cause_finds_the_exception_line_not_the_frames():
    assert log_cause(TRACEBACK) == "SyntaxError: invalid syntax"
    assert (
        log_cause('{"level": "error", "event": "db.connect", "message": "refused"}\n{"level": "info"}\n')
        == "error db.connect refused"
    )
    assert log_cause("starting\n  indented detail\n") == "starting"
    # Only request lines: the last one, summarised, never the raw JSON.
    assert (
        log_cause(
            '{"time": "t", "level": "INFO", "event": "http.request", "message": "GET /health/ready 503", '
            '"request_id": "r1"}\n'
        )
        == "INFO http.request GET /health/ready 503"
    )
    assert log_cause("") == ""


def test_supervisor_state_reads_the_status_line():
    assert (
        supervisor_state("app-8101   FATAL   Exited too quickly (process log may have details)\n")
        == "FATAL (Exited too quickly (process log may have details))"
    )
    assert supervisor_state("app-8101   RUNNING\n") == "RUNNING"
    assert supervisor_state("") == ""


def test_a_gate_failure_detail_names_state_and_cause_bounded_and_on_one_line():
    h = host()
    port = h.instance_ports[0]
    check = (
        f"{h.ready_url_for(port)} answered HTTP 000 after 8s ({cmd.program_name(port)} is FATAL: it exited "
        f"on every start):\n\n"
    )
    failure = GateFailed(
        h,
        [port],
        check,
        {port: TRACEBACK + "x" * 2000 + "\n"},
        {port: f"{cmd.program_name(port)}  FATAL  Exited too quickly (process log may have details)"},
    )
    detail = gate_failure_detail(failure)
    assert detail.startswith(f"host-3: gate HTTP 000 after 8s; {cmd.program_name(port)} FATAL (Exited too quickly")
    assert detail.endswith("last log: SyntaxError: invalid syntax")
    assert "\n" not in detail and len(detail) <= DETAIL_LIMIT
    assert str(failure).splitlines()[1:3] == [
        f"  {cmd.program_name(port)} FATAL (Exited too quickly (process log may have details)): "
        "no answer from /health/ready after 8s",
        "    log: SyntaxError: invalid syntax",
    ]
    # Two instances that say the same are listed once; the gate's body (the readiness answer) is kept.
    ports = list(h.instance_ports[:2])
    request = '{"level": "INFO", "event": "http.request", "message": "GET /health/ready 503"}\n'
    never_ready = "".join(
        f'{h.ready_url_for(p)} answered HTTP 503 after 31s:\n{{"status": "not ready", "migrations": "mismatch"}}\n'
        for p in ports
    )
    both = gate_failure_detail(
        GateFailed(
            h,
            ports,
            never_ready,
            {p: request for p in ports},
            {p: f"{cmd.program_name(p)}  RUNNING  pid 1, uptime 0:00:31" for p in ports},
        )
    )
    assert both == (
        f'host-3: gate HTTP 503 after 31s: {{"status": "not ready", "migrations": "mismatch"}}; '
        f"{cmd.program_name(ports[0])}, {cmd.program_name(ports[1])} RUNNING, "
        f"last log: INFO http.request GET /health/ready 503"
    )
    secret = GateFailed(h, [port], "boom", {port: "RuntimeError: cannot reach postgresql://cnb:s3cret@db/cnb\n"})
    assert "s3cret" not in gate_failure_detail(secret) and "postgresql://cnb:***@db/cnb" in gate_failure_detail(secret)


def test_a_branch_or_head_is_told_to_tag_a_commit():
    repo = Path("/repo")
    assert "'main' is a branch, not a tag" in missing_tag_message("main", repo, "branch")
    assert "`git tag v1.2.3 main`" in missing_tag_message("main", repo, "branch")
    head = missing_tag_message("HEAD", repo, "HEAD")
    assert "`git tag v1.2.3 HEAD`" in head and "git tag HEAD`" not in head
    assert "git fetch --tags" in missing_tag_message("v9", repo, None)


def test_rolling_back_to_a_bad_release_warns():
    bad = ledger.LedgerEntry(
        who="me",
        when="2026-11-27T02:00:00+00:00",
        kind="deploy",
        tag="v3-broken",
        commit="c",
        release="20261127T020000Z-v3-broken",
        hosts=["h"],
        duration_s=9.0,
        outcome="rolled_back",
        marked_bad=["20261127T020000Z-v3-broken"],
    )
    warning = bad_target_warning("20261127T020000Z-v3-broken", [bad])
    assert warning.startswith("WARNING: 20261127T020000Z-v3-broken is marked bad (deploy rolled_back at 2026-11-27")
    assert bad_target_warning("20261127T010000Z-v2", [bad]) is None


def test_the_host_command_is_runnable_with_the_real_deploy_root():
    assert host_ops_command("/srv/cnb", "migrate", "--status") == (
        "cd /srv/cnb/current && ENV_FILE=/srv/cnb/shared/.env ./.venv/bin/python -m deploy.ops.cli migrate --status"
    )


def test_a_live_restore_ledger_entry_names_the_backup_and_the_new_safety_backup():
    before = {"complete": [{"backup_id": "B1", "reason": "manual"}, {"backup_id": "S0", "reason": "safety"}]}
    after = {
        "complete": before["complete"]
        + [{"backup_id": "S1", "reason": "safety"}, {"backup_id": "B2", "reason": "scheduled"}]
    }
    assert new_safety_backup(before, after) == "S1"
    assert new_safety_backup(before, before) is None
    state = cmd.HostState(
        current="20261127T010000Z-v1",
        releases=["20261127T010000Z-v1"],
        live_ports_text="",
        ledger_text="",
        env_file_exists=True,
        migration_heads={},
        metadata={"20261127T010000Z-v1": '{"commit": "abc"}'},
    )
    entry = restore_ledger_entry(
        "me@laptop", "2026-11-27T03:00:00+00:00", state, ["h1", "h2"], 41.234, "B1", "S1", None
    )
    assert (
        entry.kind,
        entry.tag,
        entry.commit,
        entry.outcome,
        entry.backup,
        entry.safety_backup,
        entry.duration_s,
    ) == ("restore", "v1", "abc", "ok", "B1", "S1", 41.23)
    failed = restore_ledger_entry(
        "me", "t", state, ["h1"], 5.0, "B1", None, "ERROR: [h1] the ops CLI's\nrestore failed"
    )
    assert failed.outcome == "failed" and failed.detail == "restore failed: ERROR: [h1] the ops CLI's restore failed"
    assert ledger.parse_ledger(ledger.format_entry(failed)) == [failed]


def test_the_lock_holder_reads_as_words_without_its_token():
    text = '{"holder": "ann@laptop", "operation": "deploy v1.2.0", "since": "2026-01-02T03:04:05+00:00", "token": "s3cr"}\n'
    assert describe_holder(text) == "ann@laptop (deploy v1.2.0) since 2026-01-02T03:04:05+00:00"
    assert describe_holder('{"holder": "gone@laptop"}') == "gone@laptop"
    assert describe_holder("garbage\nmore") == "an unreadable lock file ('garbage')"
    assert describe_holder('["a list"]') == "an unreadable lock file ('[\"a list\"]')"


def test_a_freeze_reads_with_its_reason_and_says_how_to_lift_it():
    record = holder_record("ann@laptop", FREEZE, "2026-01-02T03:04:05+00:00", "s3cr", "db upgrade, back at 14:00")
    assert json.loads(record)["message"] == "db upgrade, back at 14:00"
    assert "message" not in json.loads(holder_record("ann@laptop", "deploy v1", "t", "s3cr"))
    assert describe_holder(record) == (
        "ann@laptop (deploys frozen: db upgrade, back at 14:00) since 2026-01-02T03:04:05+00:00"
    )
    frozen = held_message("host-2", record + "\n")
    assert frozen == (
        "[host-2] the deploy lock is held by ann@laptop (deploys frozen: db upgrade, back at 14:00) since "
        "2026-01-02T03:04:05+00:00; lift the freeze with `invoke lock --release` when that reason no longer holds"
    )
    assert "s3cr" not in frozen
    running = held_message("host-2", holder_record("bob@box", "deploy v2", "t", "tok"))
    assert running.endswith("if that operation is really gone, free it with `invoke lock --release`")
    assert held_message("host-2", "garbage").startswith("[host-2] the deploy lock is held by an unreadable lock file")


def test_a_freeze_needs_a_one_line_reason():
    assert freeze_message("  db\nupgrade \t now ") == "db upgrade now"
    for empty in (None, "", " \n "):
        with pytest.raises(ValueError, match="a freeze needs a reason"):
            freeze_message(empty)
    with pytest.raises(ValueError, match="at most 200 characters, got 201"):
        freeze_message("x" * 201)


def test_rollback_without_to_goes_to_what_was_live_before_and_says_when_nothing_was():
    a, b, a2 = "20261127T010000Z-vA", "20261127T020000Z-vB", "20261127T030000Z-vA"

    def state(current, *entries):
        text = "".join(ledger.format_entry(e) + "\n" for e in entries)
        return cmd.HostState(current, [a, b, a2], "", text, True, {}, {})

    def went_live(release, previous, kind="deploy", marked_bad=()):
        return ledger.LedgerEntry(
            "me",
            "t",
            kind,
            ledger.release_tag(release),
            "c",
            release,
            ["host-3"],
            1.0,
            "ok",
            previous,
            list(marked_bad),
        )

    redeployed = [went_live(a, None), went_live(b, a), went_live(a2, b)]
    assert choose_rollback_target(host(), state(a2, *redeployed), None) == (a2, b)
    rolled = state(b, *redeployed, went_live(b, a2, "rollback", [a2]))  # `rollback --to vB` away from vA
    assert choose_rollback_target(host(), rolled, None) == (b, a)
    assert choose_rollback_target(host(), rolled, "vA") == (b, a2)  # --to: the newest release of the tag
    with pytest.raises(DeployError, match=r"no release that was live before 20261127T010000Z-vA is still on the host"):
        choose_rollback_target(host(), state(a, went_live(a, None)), None)


def test_a_broken_release_s_gate_output_is_the_first_cause_per_instance():
    """Captured from a broken deploy: one instance never ready (a failing check), one crashing at
    import. The operator reads one or two lines per instance, not their 30-line log tails."""
    h = host()
    never, crashing = h.instance_ports[:2]
    body = json.dumps(
        {
            "status": "unavailable",
            "checks": {"database": "ok", "migrations": "mismatch: database at 0002_b, release expects vX"},
            "error": {
                "code": "SERVICE_UNAVAILABLE",
                "message": "migrations: mismatch: database at 0002_b, release expects vX",
                "details": {},
            },
        }
    )
    check = (
        f"{h.ready_url_for(never)} answered HTTP 503 after 31s:\n{body}\n"
        f"{h.ready_url_for(crashing)} answered HTTP 000 after 9s ({cmd.program_name(crashing)} is FATAL: it exited "
        f"on every start):\n\n"
    )
    requests = "".join(
        f'{{"level": "INFO", "event": "http.request", "message": "GET /health/ready 503", "request_id": "gate-{i}"}}\n'
        for i in range(30)
    )
    failure = GateFailed(
        h,
        [never, crashing],
        check,
        {never: requests, crashing: TRACEBACK * 3},
        {
            never: f"{cmd.program_name(never)}  RUNNING  pid 12, uptime 0:00:31",
            crashing: f"{cmd.program_name(crashing)}  FATAL  Exited too quickly (process log may have details)",
        },
    )
    assert str(failure).splitlines() == [
        f"[host-3] {cmd.program_name(never)}, {cmd.program_name(crashing)} failed the health gate:",
        f"  {cmd.program_name(never)} RUNNING: /health/ready answered HTTP 503 after 31s: "
        "migrations: mismatch: database at 0002_b, release expects vX",
        f"  {cmd.program_name(crashing)} FATAL (Exited too quickly (process log may have details)): "
        "no answer from /health/ready after 9s",
        "    log: SyntaxError: invalid syntax",
        "  the instances' full logs: `invoke logs --all-slots`",
    ]


def test_a_check_that_names_no_instance_is_shown_bounded():
    h = host()
    output = "nginx flip failed: back on the old instances\n" + "".join(f"line {i}\n" for i in range(50))
    failure = GateFailed(h, list(h.instance_ports[:1]), f"post-switch check through nginx failed:\n{output}", {})
    lines = str(failure).splitlines()
    assert lines[1:3] == ["  post-switch check through nginx failed:", "  nginx flip failed: back on the old instances"]
    assert len(lines) == 1 + 6

"""The commands the deploy tooling builds, run by a real sh on this machine: the background drain,
phase markers, the host-state read, the cron UTC guards, the system setup, and the readiness
poller against booting instances and a real supervisord (tests/unit has their golden strings)."""

from __future__ import annotations

import http.server
import os
import re
import socketserver
import subprocess
import threading
import time
from urllib.parse import quote

import pytest

from deploy import commands as cmd
from deploy.commands import Layout
from deploy.lock import FREEZE, freeze_message, held_message, holder_record
from deploy.ops.stats import model
from tests.unit.deploy.test_commands import host  # noqa: F401 (fixture)


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)


def test_the_background_drain_does_not_background_the_chain_before_it(tmp_path):
    lay = Layout(str(tmp_path))
    chained = sh("false && " + cmd.drain_in_background_command(lay, (8001,), "test"))
    assert chained.returncode != 0 and not (tmp_path / "state").exists()


def test_phase_markers_measure_the_steps_of_a_command():
    output = sh(
        " && ".join(
            [
                cmd.phase_marker("begin"),
                "sleep 0.2",
                cmd.phase_marker("started"),
                "echo noise",
                cmd.phase_marker("ready"),
            ]
        )
    ).stdout
    (first, started), (second, ready) = cmd.phase_durations(output)
    assert (first, second) == ("started", "ready")
    assert 0.15 <= started < 2 and 0 <= ready < 1
    assert cmd.phase_durations("no markers\n@phase broken x\n") == []


def test_host_state_is_read_in_one_command(tmp_path):
    lay = Layout(str(tmp_path))
    older, newer = "20261127T010203Z-v1", "20261127T020304Z-v2"
    for rel, heads in ((older, ["0_init.py"]), (newer, ["0_init.py", "2_b.py", "10_c.py"])):
        models = tmp_path / "releases" / rel / "migrations" / "models"
        models.mkdir(parents=True)
        for head in heads:
            (models / head).write_text("")
        (tmp_path / "releases" / rel / "RELEASE.json").write_text(f'{{"commit": "c-{rel}"}}')  # no newline
    (tmp_path / "releases" / ".upload-x.tar.gz").write_text("")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "live_ports").write_text("8101 8102")
    (tmp_path / "state" / "ledger.jsonl").write_text('{"a": 1}\n{"b": 2}')
    empty = cmd.parse_state(sh(cmd.read_state_command(lay)).stdout)
    assert empty.current is None and not empty.env_file_exists
    (tmp_path / "current").symlink_to(tmp_path / "releases" / newer)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / ".env").write_text("")
    state = cmd.parse_state(sh(cmd.read_state_command(lay)).stdout)
    assert state.current == newer and state.releases == [older, newer] and state.env_file_exists
    assert state.migration_heads == {older: "0_init.py", newer: "10_c.py"}
    assert state.metadata == {older: f'{{"commit": "c-{older}"}}', newer: f'{{"commit": "c-{newer}"}}'}
    assert state.live_ports_text == "8101 8102"
    assert state.ledger_text == '{"a": 1}\n{"b": 2}'  # the file's missing final newline hid no marker


def _cron_guard_fires(guard: cmd.UtcGuard, utc_now: str, tmp_path) -> bool:
    """Run the guard as cron would (`\\%` becomes `%`) with a `date` that answers for `utc_now`,
    in a host zone that is not UTC."""
    shim = tmp_path / "date"
    shim.write_text(f'#!/bin/sh\nexec /bin/date -d {utc_now!r} "$@"\n')
    shim.chmod(0o755)
    script = cmd.utc_time_guard(guard).replace("\\%", "%")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TZ": "Asia/Kathmandu"}  # UTC+05:45
    return subprocess.run(["sh", "-c", script], env=env).returncode == 0


@pytest.mark.parametrize(
    "utc_now,fires",
    [
        ("2026-12-06T02:00:00Z", True),  # first Sunday of December
        ("2026-12-06T02:15:00Z", False),
        ("2026-12-13T02:00:00Z", False),  # second Sunday
        ("2026-12-07T02:00:00Z", False),  # a Monday in the first week
        ("2026-11-01T02:00:00Z", True),
    ],
)
def test_the_maintenance_guard_follows_the_utc_clock(tmp_path, utc_now, fires):
    assert _cron_guard_fires(cmd.MAINTENANCE_UTC_TIME, utc_now, tmp_path) is fires


@pytest.mark.parametrize(
    "schedule,utc_now,fires",
    [
        ("weekly", "2026-11-29T01:00:00Z", True),
        ("weekly", "2026-11-28T01:00:00Z", False),
        ("daily", "2026-11-28T01:00:00Z", True),
        ("daily", "2026-11-28T01:15:00Z", False),
        ("hourly", "2026-11-28T13:00:00Z", True),
        ("hourly", "2026-11-28T13:45:00Z", False),
    ],
)
def test_the_backup_guard_follows_the_utc_clock(tmp_path, schedule, utc_now, fires):
    assert _cron_guard_fires(cmd.BACKUP_UTC_TIMES[schedule], utc_now, tmp_path) is fires


def test_the_quarter_hour_tick_reaches_utc_times_in_a_zone_offset_by_45_minutes(tmp_path):
    # Kathmandu's 00:30 UTC is 06:15 local: an hourly or half-hourly tick would never see it.
    assert cmd.CRON_EVERY_QUARTER_HOUR.split()[0] == "*/15"
    assert _cron_guard_fires(cmd.ARCHIVE_LOGS_UTC_TIME, "2026-11-28T00:30:00Z", tmp_path)


def test_sysctl_file_lets_nginx_bind_80_and_turns_autogroup_off_where_the_kernel_has_it(tmp_path):
    """Run for real against a folder: the file sysctl would apply, with and without the knob."""
    for knob_exists in (True, False):
        knob = tmp_path / f"knob-{knob_exists}"
        if knob_exists:
            knob.write_text("1\n")
        target = tmp_path / "60-clicknback.conf"
        command = (
            cmd.sysctl_command()
            .replace(cmd.AUTOGROUP_KNOB, str(knob))
            .replace(cmd.SYSCTL_FILE, str(target))
            .replace("sysctl --system", "true")
        )
        subprocess.run(["sh", "-c", command], check=True)
        expected = ["net.ipv4.ip_unprivileged_port_start=80"]
        if knob_exists:
            expected.append("kernel.sched_autogroup_enabled=0")
        assert target.read_text().splitlines() == expected


def test_system_setup_copies_the_admins_keys_not_roots(host, tmp_path):
    keys = next(c for c in cmd.system_setup_commands(host) if "authorized_keys" in c)
    assert "~" not in keys  # under `sudo -n sh -c`, ~ is root's home
    assert keys.endswith(
        '{ [ "$admin_home" = "$deploy_home" ] || install -m 600 -o clicknback -g clicknback'
        ' "$admin_home/.ssh/authorized_keys" "$deploy_home/.ssh/authorized_keys"; }'
    )
    # The admin's home as the command resolves it: $SUDO_USER's under sudo, else the caller's own.
    resolve = keys.split(" && deploy_home=", 1)[0] + ' && echo "$admin_home"'
    import os
    import pwd

    me = pwd.getpwuid(os.getuid())
    env = {"PATH": "/usr/bin:/bin"}
    assert (
        subprocess.run(
            ["sh", "-c", resolve], env={**env, "SUDO_USER": "root"}, capture_output=True, text=True
        ).stdout.strip()
        == pwd.getpwnam("root").pw_dir
    )
    assert subprocess.run(["sh", "-c", resolve], env=env, capture_output=True, text=True).stdout.strip() == me.pw_dir


class FlakyReadiness(http.server.BaseHTTPRequestHandler):
    """Answers 503 `starting` to the first two probes, then 200: an instance that boots."""

    answered = 0
    request_ids: list[str] = []

    def do_GET(self):
        type(self).answered += 1
        type(self).request_ids.append(self.headers.get("X-Request-ID", ""))
        status = 200 if type(self).answered > 2 else 503
        body = b'{"status": "ready"}' if status == 200 else b'{"status": "starting"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    def get_request(self):
        connection, _ = super().get_request()
        return connection, ("local", 0)  # BaseHTTPRequestHandler expects a (host, port) client address


@pytest.fixture(params=["tcp", "unix"])
def booting_instance(request, tmp_path):
    """The URL of a booting instance: http://127.0.0.1:<port>/..., or http+unix://<socket>/... as
    deploy.inventory.Host.instance_url builds it for instance_listen = "unix"."""
    if request.param == "unix":
        socket_path = str(tmp_path / "app-8001.sock")
        server = UnixHTTPServer(socket_path, FlakyReadiness)
        url = "http+unix://" + quote(socket_path, safe="") + "/health/ready"
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyReadiness)
        url = f"http://127.0.0.1:{server.server_address[1]}/health/ready"
    FlakyReadiness.answered, FlakyReadiness.request_ids = 0, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


def test_one_probe_prints_status_and_body_through_curl(booting_instance):
    assert sh(cmd.probe_command(booting_instance)).stdout == '503 {"status": "starting"}\n'
    assert sh(cmd.probe_command(booting_instance)).stdout == '503 {"status": "starting"}\n'
    assert sh(cmd.probe_command(booting_instance)).stdout == '200 {"status": "ready"}\n'
    # `invoke health`'s probes name themselves, so `stats` counts them apart from client traffic.
    ids = FlakyReadiness.request_ids
    assert len(set(ids)) == 3 and all(i.startswith("health-probe-") for i in ids), ids
    assert all(model.is_gate_probe({"request_id": i, "path": "/health/ready"}) for i in ids)


def test_readiness_poll_passes_once_every_url_answers_200_polling_fast(booting_instance):
    started = time.monotonic()
    result = sh(cmd.readiness_poll_command([booting_instance], 30, 1.0) + " && echo flipped")
    assert result.stdout == "flipped\n" and FlakyReadiness.answered == 3
    # Each probe names itself, so `stats` counts the gate's probes apart from client traffic.
    ids = FlakyReadiness.request_ids
    assert len(set(ids)) == 3 and all(model.is_gate_probe({"request_id": i, "path": "/health/ready"}) for i in ids)
    assert time.monotonic() - started < 2  # two 0.1 s waits, not two 1 s waits


def test_readiness_poll_gives_up_at_the_deadline_naming_what_is_not_ready(booting_instance):
    from devtools.local_postgres import free_port

    url = f"http://127.0.0.1:{free_port()}/health/ready"  # nothing listens there
    result = sh(cmd.readiness_poll_command([booting_instance, url], 1, 0.2) + " && echo flipped")
    assert result.returncode != 0 and "flipped" not in result.stdout
    assert re.search(rf"^{re.escape(url)} answered HTTP 000 after 1s:$", result.stdout, re.M), result.stdout
    assert booting_instance not in result.stdout  # it became ready: only the failing URL is named


def test_readiness_poll_gives_up_early_on_a_program_supervisor_marked_fatal(tmp_path):
    """A real supervisord whose program exits at once: FATAL after its one start, the gate stops."""
    from devtools.local_postgres import free_port

    conf, sock = tmp_path / "supervisord.conf", tmp_path / "s.sock"
    conf.write_text(
        f"[unix_http_server]\nfile={sock}\n[supervisord]\npidfile={tmp_path}/s.pid\nlogfile={tmp_path}/s.log\n"
        f"childlogdir={tmp_path}\n"
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        f"[supervisorctl]\nserverurl=unix://{sock}\n"
        "[program:app-1]\ncommand=/bin/false\nautostart=true\nstartsecs=1\nstartretries=0\n"
    )
    subprocess.run([cmd.SUPERVISORD, "-c", str(conf)], check=True, timeout=10)
    try:
        url = f"http://127.0.0.1:{free_port()}/health/ready"
        started = time.monotonic()
        result = sh(cmd.readiness_poll_command([url], 60, 0.2, "python3", str(sock), ["app-1"], fast_for=0))
        assert result.returncode == 1 and time.monotonic() - started < 10, result.stdout
        assert re.search(
            rf"^{re.escape(url)} answered HTTP 000 after [0-9]s \(app-1 is FATAL: it exited on"
            r" every start\):$",
            result.stdout,
            re.M,
        ), result.stdout
    finally:
        subprocess.run([cmd.SUPERVISORCTL, "-c", str(conf), "shutdown"], capture_output=True, timeout=20)


def test_a_freeze_reason_with_shell_characters_reaches_the_lock_file_intact(tmp_path):
    lay = Layout(str(tmp_path))
    reason = freeze_message('it\'s `date` $(rm -rf /) "quoted"; back at 14:00')
    record = holder_record("ann@laptop", FREEZE, "2026-01-02T03:04:05+00:00", "tok", reason)
    assert sh(cmd.lock_acquire_command(lay, record)).returncode == 0
    assert (tmp_path / "state" / "deploy.lock").read_text() == record + "\n"
    refused = sh(cmd.lock_acquire_command(lay, holder_record("bob@box", "deploy v2", "t", "tok2")))
    assert refused.returncode == cmd.LOCK_HELD_EXIT
    assert f"(deploys frozen: {reason})" in held_message("h1", refused.stdout)
    sh(cmd.lock_release_command(lay, None))
    assert not (tmp_path / "state" / "deploy.lock").exists()


def test_provision_gives_only_missing_slots_the_release_current_runs(tmp_path):
    lay = Layout(str(tmp_path))
    for rel in ("r1", "r2"):
        (tmp_path / "releases" / rel).mkdir(parents=True)
    (tmp_path / "slots").mkdir()
    assert sh(cmd.link_missing_slots_command(lay, (8001, 9001))).returncode == 0  # nothing deployed yet
    assert not list((tmp_path / "slots").iterdir())
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "r1")
    (tmp_path / "slots" / "app-9001").symlink_to(tmp_path / "releases" / "r2")
    assert sh(cmd.link_missing_slots_command(lay, (8001, 9001))).returncode == 0
    assert (tmp_path / "slots" / "app-8001").resolve() == tmp_path / "releases" / "r1"
    assert (tmp_path / "slots" / "app-9001").resolve() == tmp_path / "releases" / "r2"  # left alone
    assert sh(cmd.point_release_slots_command(lay, "r2", (8001,))).returncode == 0
    assert (tmp_path / "slots" / "app-8001").resolve() == tmp_path / "releases" / "r2"


def test_an_interrupted_prepare_step_is_stopped_with_its_children(tmp_path):
    """The undo of an interrupted switch kills the prepare shell's whole process group (its curl
    and poller too), so nothing it ran can start an instance after the undo stopped them."""
    lay = Layout(str(tmp_path))
    (tmp_path / "state").mkdir()
    child_pid = tmp_path / "child.pid"
    # A stand-in for the prepare shell, leading its own session as under sshd, with a child.
    script = f"echo $$ > {lay.prepare_pid}; sleep 60 & echo $! > {child_pid}; wait; : {lay.root}"
    shell = subprocess.Popen(["setsid", "sh", "-c", script])
    try:
        deadline = time.monotonic() + 5
        while not child_pid.exists() or not child_pid.read_text().strip():
            assert time.monotonic() < deadline, "the stand-in never started"
            time.sleep(0.02)
        child = int(child_pid.read_text())
        result = sh(cmd.kill_prepare_command(lay))
        assert result.returncode == 0 and "stopped the interrupted prepare step" in result.stdout
        assert shell.wait(timeout=5) != 0
        assert subprocess.run(["kill", "-0", str(child)], capture_output=True).returncode != 0
        assert not (tmp_path / "state" / "prepare.pid").exists()
    finally:
        shell.kill()
        shell.wait(timeout=5)
    # No prepare running, or a pid file naming another program: nothing is killed, still success.
    (tmp_path / "state" / "prepare.pid").write_text(f"{os.getpid()}\n")
    assert sh(cmd.kill_prepare_command(lay)).returncode == 0
    assert "stopped" not in sh(cmd.kill_prepare_command(lay)).stdout


def test_prepare_refuses_programs_that_still_run_current(tmp_path, host):  # noqa: F811 (fixture)
    """A host provisioned before slot links would start the new instances from `current` (the old
    release) and pass the gate with the old code: prepare stops first and says what to do."""
    lay = Layout(str(tmp_path))
    (tmp_path / "supervisor" / "conf.d").mkdir(parents=True)
    (tmp_path / "state").mkdir()
    for port in (8101, 8102):
        old = cmd.supervisor_program_conf(lay, host, port).replace(lay.slot(port), lay.current)
        (tmp_path / "supervisor" / "conf.d" / f"app-{port}.conf").write_text(old)
    result = sh(cmd.prepare_switch_command(lay, host, "r1", (8101, 8102)))
    assert result.returncode != 0
    assert "the supervisor programs predate slot links: run `invoke provision` first" in result.stdout
    assert not (tmp_path / "slots").exists() and not (tmp_path / "state" / "prepare.pid").exists()


def test_host_state_names_the_program_files_that_still_run_current(tmp_path, host):  # noqa: F811 (fixture)
    lay = Layout(str(tmp_path))
    assert cmd.parse_state(sh(cmd.read_state_command(lay)).stdout).programs_without_slots == ()
    (tmp_path / "supervisor" / "conf.d").mkdir(parents=True)
    for port in (8001, 8101):
        (tmp_path / "supervisor" / "conf.d" / f"app-{port}.conf").write_text(
            cmd.supervisor_program_conf(lay, host, port)
        )
    assert cmd.parse_state(sh(cmd.read_state_command(lay)).stdout).programs_without_slots == ()
    old = cmd.supervisor_program_conf(lay, host, 8101).replace(lay.slot(8101), lay.current)
    (tmp_path / "supervisor" / "conf.d" / "app-8101.conf").write_text(old)
    assert cmd.parse_state(sh(cmd.read_state_command(lay)).stdout).programs_without_slots == ("app-8101",)

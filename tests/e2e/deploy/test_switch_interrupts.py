"""A deploy interrupted during its readiness gate, as an operator's Ctrl-C or a dead laptop does it.

`invoke deploy --tag vBroken` (readiness never passes) runs in its own process group; once the gate
polls the new instances on every host, the group gets SIGINT (or SIGKILL). Every host must keep
serving, restarting and rebooting into the last good release: `current`, state/live_ports and the
live slots never moved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy import commands as cmd
from deploy.session import current_release, layout, live_ports, read_ledger
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def good_release(run_task, sandbox, remotes) -> str:
    """Provisioned hosts serving vB: the last good release an interruption must leave in place.
    vB, not vA: vBroken has vB's migration, which its deploy applies before the gate."""
    run_task("provision", "--env-file", str(sandbox.env_file))
    if run_task("lock", check=False).output.count("free") != len(remotes):
        run_task("lock", "--release")  # a previous test module's leftovers
    run_task("deploy", "--tag", "vB")
    release = current_release(remotes[0])
    assert release and release.endswith("-vB")
    return release


def snapshot(remotes) -> list[tuple[str | None, tuple[int, ...]]]:
    return [(current_release(r), live_ports(r)) for r in remotes]


def standby_answers(remote) -> bool:
    """The gate is running on this host: a new instance answers on a standby port (never 200)."""
    host = remote.host
    ports = [host.partner_port(p) for p in live_ports(remote)]
    answers = [remote.query(cmd.probe_command(host.ready_url_for(p)), check=False).stdout for p in ports]
    return all(a.split(" ", 1)[0] not in ("", "000", "200") for a in answers)


def start_task(repo, sandbox, log: Path, args: tuple[str, ...]) -> subprocess.Popen:
    env = {**os.environ, "CLICKNBACK_INVENTORY": str(sandbox.inventory_path), "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args],
            cwd=repo.path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )


def interrupt_during_gate(
    repo,
    sandbox,
    remotes,
    tmp_path: Path,
    signum: int,
    args: tuple[str, ...] = ("deploy", "--tag", "vBroken"),
    twice: bool = False,
) -> tuple[int, str]:
    """Start the task, signal its process group once the gate runs on every host (with `twice`:
    again as soon as it says it puts the hosts back), and return its status and output."""
    log = tmp_path / "task.log"
    task = start_task(repo, sandbox, log, args)
    try:
        wait_for(lambda: all(standby_answers(r) for r in remotes) or task.poll() is not None, 120, "the gate")
        assert task.poll() is None, log.read_text()
        os.killpg(task.pid, signum)
        signalled = time.monotonic()
        if twice:
            wait_for(lambda: "putting every host" in log.read_text() or task.poll() is not None, 30, "the undo")
            os.killpg(task.pid, signum)
        code = task.wait(timeout=90)
        took = time.monotonic() - signalled
        # The gate would run on for up to health_timeout (30 s): a signal must not wait for it.
        assert took < 20, f"{took:.1f}s from the signal to the end of the task\n{log.read_text()}"
        print(f"\n{signal.Signals(signum).name} of {' '.join(args)}: the task ended {took:.2f}s after the signal")
    finally:
        if task.poll() is None:
            os.killpg(task.pid, signal.SIGKILL)
            task.wait(timeout=10)
    return code, log.read_text()


def release_of_process(remote, pid: str) -> str:
    return Path(remote.query(f"readlink /proc/{pid}/cwd").stdout.strip()).name


def live_instance(remote, port: int) -> str:
    pid = remote.query(cmd.instance_pid_command(layout(remote), port), check=False).stdout.strip()
    return pid if pid not in ("", "0") and pid.isdigit() else ""


def ready(remote, port: int) -> bool:
    return remote.query(cmd.probe_command(remote.host.ready_url_for(port)), check=False).stdout.startswith("200")


def diagnosis(remote, port: int) -> str:
    """What a failed wait for an instance shows: supervisor's view, a probe, the instance's output."""
    lay = layout(remote)
    status = remote.query(cmd.supervisorctl_command(lay, "status"), check=False).stdout
    probe = remote.query(cmd.probe_command(remote.host.ready_url_for(port)), check=False).stdout
    tail = remote.query(cmd.instance_output_tail_command(lay, port, 20), check=False).stdout
    return f"{status}\n{probe}\n{tail}"


def killed_instance_comes_back_on(remote, good: str) -> None:
    """SIGKILL a live instance: supervisor restarts it, from the last good release, ready."""
    port = live_ports(remote)[0]
    pid = live_instance(remote, port)
    assert pid and release_of_process(remote, pid) == good
    remote.query(f"kill -9 {pid}")
    try:
        new_pid = wait_for(
            lambda: (p := live_instance(remote, port)) not in ("", pid) and ready(remote, port) and p,
            60,
            f"app-{port} restarted by supervisor and ready",
            interval=0.2,
        )
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\n{diagnosis(remote, port)}") from None
    assert release_of_process(remote, new_pid) == good


def standby_stopped(remote) -> bool:
    ports = [remote.host.partner_port(p) for p in live_ports(remote)]
    return all(live_instance(remote, p) == "" for p in ports)


def lock_holder(remote) -> str:
    return remote.query(cmd.lock_status_command(layout(remote))).stdout.strip()


def test_sigint_twice_during_the_gate_puts_every_host_back_and_says_so(
    run_task, repo, sandbox, remotes, good_release, tmp_path
):
    before = snapshot(remotes)
    code, output = interrupt_during_gate(repo, sandbox, remotes, tmp_path, signal.SIGINT, twice=True)
    assert code == 130, output
    assert output.count("interrupted by SIGINT: finishing the current step") == 1, output
    assert "SIGINT ignored: the hosts are being put back" in output, output  # the second Ctrl-C
    assert f"ERROR: deploy of vBroken interrupted by SIGINT: every host is back on {good_release}" in output
    assert "Traceback" not in output, output
    assert snapshot(remotes) == before
    assert all(lock_holder(r) == "" for r in remotes)
    for remote in remotes:
        last = read_ledger(remote)[-1]
        assert (last.tag, last.outcome, last.marked_bad) == ("vBroken", "interrupted", []), last
        assert "SIGINT during the switch" in last.detail
        wait_for(lambda r=remote: standby_stopped(r), 60, "the interrupted deploy's instances to stop", interval=0.2)
    killed_instance_comes_back_on(remotes[1], good_release)
    releases = run_task("releases")
    assert "interrupted" in releases.output and "vBroken" in releases.output, releases.output
    handoff = run_task("handoff", check=False)
    assert "interrupted" in handoff.output, handoff.output


def test_sigkill_during_the_gate_leaves_the_last_good_release_to_restart_and_reboot(
    run_task, repo, sandbox, remotes, good_release, tmp_path
):
    before = snapshot(remotes)
    code, output = interrupt_during_gate(repo, sandbox, remotes, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL, output
    assert snapshot(remotes) == before  # `current` and the live ports never moved
    killed_instance_comes_back_on(remotes[0], good_release)
    # A reboot: the whole stack of host-3 stopped, then started as @reboot does.
    remote = remotes[1]
    lay = layout(remote)
    remote.query(cmd.stop_services_command(lay))
    # Gone means their processes exited (supervisord stops answering while it stops the instances).
    running = " || ".join(
        f'{{ [ -s {pid_file} ] && kill -0 "$(cat {pid_file})"; }}'
        for pid_file in (f"{lay.root}/supervisor/supervisord.pid", f"{lay.root}/nginx/nginx.pid")
    )
    wait_for(
        lambda: remote.query(running, check=False).exited != 0,
        60,
        "host-3's supervisord and nginx to stop",
        interval=0.2,
    )
    started = remote.query(cmd.start_services_command(lay), check=False)
    for port in live_ports(remote):
        try:
            wait_for(lambda p=port: ready(remote, p), 60, f"app-{port} ready after the reboot", interval=0.2)
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}\n{started}\n{diagnosis(remote, port)}") from None
        assert release_of_process(remote, live_instance(remote, port)) == good_release
    assert standby_stopped(remote)  # the unready release was not started again
    # The dead task's lock stays: it is reported as words, and the next deploy is refused until
    # the operator frees it (the lock rules), then proceeds.
    assert all("deploy vBroken" in lock_holder(r) for r in remotes)
    refused = run_task("deploy", "--tag", "vC", check=False)
    assert refused.returncode == 1 and "the deploy lock is held by" in refused.output, refused.output
    assert "(deploy vBroken) since " in refused.output and "token" not in refused.output
    releases = run_task("releases").output
    assert any("vBroken" in line and "interrupted" in line for line in releases.splitlines()), releases
    run_task("lock", "--release")
    deployed = run_task("deploy", "--tag", "vC")
    assert "deployed vC" in deployed.output, deployed.output
    entries = read_ledger(remotes[0])
    killed = [e for e in entries if e.tag == "vBroken" and e.outcome == "interrupted"]
    assert killed and killed[-1].detail.startswith("never finished"), entries[-3:]


def test_sigterm_during_a_rollback_gate_puts_every_host_back(run_task, repo, sandbox, remotes, good_release, tmp_path):
    """A rollback --to a release that never gets ready (allowed, with a warning), then SIGTERM."""
    before = snapshot(remotes)
    code, output = interrupt_during_gate(
        repo, sandbox, remotes, tmp_path, signal.SIGTERM, ("rollback", "--to", "vBroken")
    )
    assert code == 143, output
    assert "interrupted by SIGTERM: finishing the current step" in output
    assert f"interrupted by SIGTERM: every host is back on {before[0][0]}" in output, output
    assert snapshot(remotes) == before
    assert all(lock_holder(r) == "" for r in remotes)
    last = read_ledger(remotes[0])[-1]
    assert (last.kind, last.tag, last.outcome, last.marked_bad) == ("rollback", "vBroken", "interrupted", [])


def test_after_a_failed_gate_a_killed_live_instance_restarts_on_the_last_good_release(
    run_task, sandbox, remotes, good_release, tmp_path
):
    """The failed gate's undo leaves the standby slots on the broken release; only live slots restart."""
    inventory = tmp_path / "inventory.toml"
    text = "\n".join(line for line in sandbox.inventory_path.read_text().splitlines() if "health_timeout" not in line)
    inventory.write_text(text.replace("[defaults]\n", "[defaults]\nhealth_timeout = 4\n", 1) + "\n")
    before = snapshot(remotes)
    failed = run_task("deploy", "--tag", "vBroken", "--inventory", str(inventory), check=False)
    assert failed.returncode == 1 and "FAILED its health gate" in failed.output, failed.output
    assert snapshot(remotes) == before
    standby_slot = layout(remotes[0]).slot(remotes[0].host.partner_port(before[0][1][0]))
    assert remotes[0].query(f"readlink {standby_slot}").stdout.strip().endswith("-vBroken")
    for remote in remotes:
        killed_instance_comes_back_on(remote, before[0][0])


def test_programs_that_still_run_current_are_refused_until_provision_moves_them_onto_slots(
    run_task, sandbox, remotes, good_release
):
    """A host an older toolkit provisioned: its standby instances would start `current` (the old
    release) and pass the gate with the old code. Deploys refuse before any change; provision
    moves it onto slot links without changing the release it runs."""
    remote = remotes[1]
    lay = layout(remote)
    for port in remote.host.all_ports:
        old = cmd.supervisor_program_conf(lay, remote.host, port).replace(lay.slot(port), lay.current)
        remote.query(cmd.write_file_command(lay.program_conf(port), old))
    remote.query(f"rm -rf {lay.slots}")
    remote.query(cmd.supervisor_ensure_running_command(lay))
    remote.query(cmd.start_live_instances_command(lay))
    for port in live_ports(remote):
        wait_for(lambda p=port: ready(remote, p), 60, f"app-{port} on the old program file", interval=0.2)
    before = snapshot(remotes)
    refused = run_task("deploy", "--tag", "vC", check=False)
    assert refused.returncode == 1, refused.output
    assert "still run `current` (provisioned by an older toolkit): run `invoke provision` first" in refused.output
    assert "[host-3]" in refused.output and snapshot(remotes) == before
    assert all(lock_holder(r) == "" for r in remotes)
    run_task("provision", "--env-file", str(sandbox.env_file))
    for port in live_ports(remote):
        wait_for(lambda p=port: ready(remote, p), 60, f"app-{port} on its slot after provision", interval=0.2)
        assert release_of_process(remote, live_instance(remote, port)) == before[1][0]
    assert snapshot(remotes) == before
    deployed = run_task("deploy", "--tag", "vC")
    assert "deployed vC" in deployed.output, deployed.output

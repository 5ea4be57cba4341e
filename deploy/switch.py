"""The health-gated switch that deploy and rollback share: prepare on every host, flip each host
only when every gate passed, then commit (move `current`, drain the old instances); any failure
before the commit undoes it all. What a restart or a reboot starts (the live slots, state/live_ports)
changes only at the flip, after every gate passed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from deploy import commands as cmd
from deploy import interrupts
from deploy.gate import LOG_LINES_ON_FAILURE, GateFailed, program_status_command
from deploy.session import Session, host_live_ports, layout, read_state
from deploy.ssh import Remote


@dataclass
class HostSwitch:
    """One host's part of a switch: which release replaces which, on which ports."""

    remote: Remote
    target: str
    old_release: str | None
    old_ports: tuple[int, ...]
    new_ports: tuple[int, ...]
    flipped: bool = False

    @classmethod
    def plan(cls, remote: Remote, state: cmd.HostState, target: str) -> HostSwitch:
        old = host_live_ports(remote, state)
        return cls(remote, target, state.current, old, tuple(remote.host.partner_port(p) for p in old))


def _phases(output: str) -> str:
    return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in cmd.phase_durations(output))


def prepare(switch: HostSwitch) -> None:
    """Bring the target up on the standby ports, gated (nginx, `current` and the live slots untouched).

    Raises GateFailed, naming the failing check and the last log lines of the failed instances.
    """
    remote, host, lay = switch.remote, switch.remote.host, layout(switch.remote)
    if not remote.dry_run:  # a dry run's own line says it
        remote.say(f"starting {switch.target} on {', '.join(cmd.program_name(p) for p in switch.new_ports)}")
    gate = remote.run(
        cmd.prepare_switch_command(lay, host, switch.target, switch.new_ports),
        check=False,
        what=f"start {switch.target} on the standby slots, gated on /health/ready",
    )
    if not gate.ok:
        output = gate.stdout + gate.stderr
        failed = cmd.failed_ports(output, host, switch.new_ports)
        tails = {
            port: remote.query(cmd.instance_output_tail_command(lay, port, LOG_LINES_ON_FAILURE)).stdout
            for port in failed
        }
        states = {port: remote.query(program_status_command(lay, port), check=False).stdout for port in failed}
        raise GateFailed(
            host,
            failed,
            "\n".join(line for line in output.splitlines() if not line.startswith("@phase ")),
            tails,
            states,
        )
    if not remote.dry_run:
        remote.say(
            f"{switch.target} ready on {', '.join(host.instance_label(p) for p in switch.new_ports)}"
            f" ({_phases(gate.stdout)})"
        )


def flip(switch: HostSwitch) -> None:
    """Send nginx's traffic to the new instances and verify readiness through nginx.

    On failure the command itself has put nginx back on the old instances; raises GateFailed.
    """
    remote, host = switch.remote, switch.remote.host
    result = remote.run(
        cmd.flip_command(layout(remote), host, switch.new_ports, switch.old_ports),
        check=False,
        what="send nginx to the new instances and verify readiness through nginx",
    )
    if not result.ok:
        output = "\n".join(
            line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("@phase ")
        )
        raise GateFailed(host, list(switch.new_ports), f"post-switch check through nginx failed:\n{output}", {})
    switch.flipped = True
    if not remote.dry_run:
        remote.say(
            f"nginx -> {', '.join(host.instance_label(p) for p in switch.new_ports)},"
            f" verified through nginx ({_phases(result.stdout)})"
        )


def undo(switch: HostSwitch) -> None:
    """Put a host back as it was: nginx on the old instances (they never stopped), the prepare
    step stopped if it still runs, the new instances stopped. `current` never moved."""
    remote, lay = switch.remote, layout(switch.remote)
    if switch.flipped:
        remote.run(cmd.unflip_command(lay, remote.host, switch.old_ports), what="send nginx back to the old instances")
    remote.run(
        cmd.undo_prepare_command(lay, switch.new_ports),
        check=False,
        what="stop the prepare step if it still runs, and the new instances",
    )
    back = f"still {switch.old_release}" if switch.old_release else "nothing was live before"
    remote.say(f"back on the old instances (current {back}); new instances stopping")


def commit(switch: HostSwitch) -> None:
    """Every host passed its gate and flipped: `current` moves and the old instances drain."""
    remote = switch.remote
    remote.run(
        cmd.commit_switch_command(layout(remote), switch.target, switch.old_ports),
        what=f"point current at {switch.target}; stop the old instances in the background, once they drain",
    )


def _undo_reporting(session: Session, switch: HostSwitch) -> None:
    try:
        undo(switch)
    except Exception as error:  # report and go on: the other hosts still need it
        session.say(f"[{switch.remote.host.name}] could not put it back: {error}")


def switch_all(session: Session, states: dict[str, cmd.HostState], targets: dict[str, str]) -> list[GateFailed]:
    """Prepare every host in parallel, flip host by host, drain; returns the failures (none = done).

    Any failure before the drain puts every host back (the old instances served throughout).
    """
    started = time.monotonic()
    switches = [HostSwitch.plan(r, states[r.host.name], targets[r.host.name]) for r in session.remotes]
    by_remote = {id(s.remote): s for s in switches}

    def prepare_one(remote: Remote) -> GateFailed | None:
        try:
            prepare(by_remote[id(remote)])
        except GateFailed as failure:
            return failure
        return None

    try:
        failures = [f for f in session.parallel(prepare_one) if f is not None]
        if not failures:
            for switch in switches:
                interrupts.check()  # between flips: a flip itself runs to its end
                try:
                    flip(switch)
                except GateFailed as failure:
                    failures.append(failure)
                    break
        interrupts.check()  # the last point before the commit
    except interrupts.Interrupted:
        with interrupts.deferred():
            session.say("putting every host back on its old instances")
            session.parallel(lambda remote: _undo_reporting(session, by_remote[id(remote)]))
        raise
    except Exception:
        # An SSH failure midway: still try to leave every host on its old instances.
        session.say("the switch broke off: putting every host back on its old instances")
        with interrupts.deferred():
            for switch in switches:
                _undo_reporting(session, switch)
        raise
    if failures:
        with interrupts.deferred():
            for failed in failures:
                session.say(str(failed))
            session.say("putting every host back on its old instances")
            session.parallel(lambda remote: undo(by_remote[id(remote)]))
        return failures
    if not session.dry_run:
        session.say(
            f"healthy: {len(switches)} host(s) serve the new instances,"
            f" {time.monotonic() - started:.1f}s after the switch began; old instances draining"
        )
    with interrupts.deferred():  # every host serves the new release: finish what that takes
        session.parallel(lambda remote: commit(by_remote[id(remote)]))
    return []


def switch_host(remote: Remote, rel_id: str) -> None:
    """The same gated switch on one host alone (the restore task restarts the app with it)."""
    switch = HostSwitch.plan(remote, read_state(remote), rel_id)
    try:
        prepare(switch)
        flip(switch)
    except GateFailed:
        undo(switch)
        raise
    commit(switch)

"""The gated switch: start the new instances beside the live ones, gate them, flip nginx, commit, or undo."""

from __future__ import annotations

from deploy.commands.health import readiness_poll_command
from deploy.commands.layout import Layout, program_name, q, write_file_command
from deploy.commands.nginx import (
    NGINX_VERIFY_SECONDS,
    nginx_apply_command,
    nginx_ready_url,
    point_slots_command,
    slot_ready_urls,
)
from deploy.commands.releases import point_release_slots_command, switch_current_command
from deploy.commands.supervisor import drain_in_background_command, start_instances_command
from deploy.inventory import Host


def phase_marker(name: str) -> str:
    """A line `@phase <name> <epoch seconds>` in a command's output: where the seconds went."""
    return f'echo "@phase {name} $(date +%s.%N)"'


def phase_durations(output: str) -> list[tuple[str, float]]:
    """(phase, seconds since the previous marker) for each `@phase` line after the first."""
    marks = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "@phase":
            try:
                marks.append((parts[1], float(parts[2])))
            except ValueError:
                continue
    return [(name, at - marks[i][1]) for i, (name, at) in enumerate(marks[1:])]


def failed_ports(gate_output: str, host: Host, ports: tuple[int, ...]) -> list[int]:
    """Which instances the gate reported as not ready (all of them when it failed earlier, at start)."""
    failed = [port for port in ports if f"{host.ready_url_for(port)} answered HTTP" in gate_output]
    return failed or list(ports)


def prepare_switch_command(layout: Layout, host: Host, rel_id: str, new_ports: tuple[int, ...]) -> str:
    """Bring `rel_id` up on the standby `new_ports` beside the live instances, gated.

    1. record this shell's pid (an interrupted switch stops the step with kill_prepare_command);
    2. refuse program files that still run `current` (provisioned before slots: re-provision);
    3. point the standby slots at the release (the live slots and `current` stay: a restart or a
       reboot still starts the old release), then start the new instances;
    4. poll each one's /health/ready until 200 or the host's health_timeout.
    nginx is not touched: the live instances keep serving whatever happens here.
    """
    gate = readiness_poll_command(
        [host.ready_url_for(port) for port in new_ports],
        host.health_timeout,
        host.health_interval,
        host.python,
        layout.supervisor_socket,
        [program_name(port) for port in new_ports],
    )
    steps = " && ".join(
        [
            phase_marker("begin"),
            programs_run_slots_check(layout, new_ports),
            point_release_slots_command(layout, rel_id, new_ports),
            start_instances_command(layout, new_ports),
            phase_marker("started"),
            gate,
            phase_marker("ready"),
        ]
    )
    pid = q(layout.prepare_pid)
    return f"echo $$ > {pid} && {{ {steps}; }}; status=$?; rm -f {pid}; exit $status"


def programs_run_slots_check(layout: Layout, ports: tuple[int, ...]) -> str:
    """Fail, saying what to do, when a program file predates slot links: its instance would run
    `current`, the old release, and pass the gate with the old code."""
    checks = " && ".join(
        f"grep -qF {q('command=' + layout.slot(port) + '/')} {q(layout.program_conf(port))}" for port in ports
    )
    return f"{{ {checks} || {{ echo 'the supervisor programs predate slot links: run `invoke provision` first'; false; }}; }}"


PREPARE_STOP_SECONDS = 5  # a killed shell, its curl and its poller exit well within this


def kill_prepare_command(layout: Layout) -> str:
    """Stop a prepare step that is still running (the task was interrupted while waiting for it),
    so it cannot start an instance after the undo stopped it. Its shell leads its own process
    group (sshd starts each command in a new session): the group goes, poller and curl included.
    The pid must still be a shell of this deploy root, not a reused pid."""
    pid = q(layout.prepare_pid)
    return (
        f'pid=$(cat {pid} 2>/dev/null); if [ -n "$pid" ] && grep -qF {q(layout.root)} "/proc/$pid/cmdline" 2>/dev/null;'
        f' then if [ "$(ps -o pgid= -p "$pid" | tr -d " ")" = "$pid" ]; then kill -TERM "-$pid";'
        f' else pkill -TERM -P "$pid"; kill -TERM "$pid"; fi;'
        f' for i in $(seq {PREPARE_STOP_SECONDS * 10}); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done;'
        f" echo 'stopped the interrupted prepare step'; fi; rm -f {pid}; true"
    )


def commit_switch_command(layout: Layout, rel_id: str, old_ports: tuple[int, ...]) -> str:
    """After every host passed its gate and flipped: `current` names the new release (the ops CLI
    and cron jobs run it), and the old instances drain in the background."""
    return " && ".join(
        [
            switch_current_command(layout, rel_id),
            drain_in_background_command(layout, old_ports, f"replaced by {rel_id}"),
        ]
    )


def undo_prepare_command(layout: Layout, new_ports: tuple[int, ...]) -> str:
    """Put a host back after a failed or interrupted prepare: stop the prepare step if it still
    runs, then stop the new instances. `current`, the live slots and state/live_ports never moved."""
    return f"{kill_prepare_command(layout)}; {drain_in_background_command(layout, new_ports, 'switch undone')}"


def flip_command(layout: Layout, host: Host, new_ports: tuple[int, ...], old_ports: tuple[int, ...]) -> str:
    """Send nginx's traffic to `new_ports`, verify it, record them as live.

    Over Unix sockets the slots' symlinks move and nginx is not reloaded (docs/adr/0008): it keeps
    every client connection, and its cached connections to the old instances end as those drain.
    The check reaches each new instance through its slot, as nginx will, and nginx itself. Over TCP
    the upstream is rewritten and nginx reloaded. The old instances still run, so when any step
    fails nginx goes back to them and the command exits non-zero: nginx is left as it was.
    """
    pid_file = q(f"{layout.root}/nginx/nginx.pid")
    through = slot_ready_urls(host, new_ports) if host.instance_listen == "unix" else []
    flip = " && ".join(
        [
            *_route_to(layout, host, new_ports),
            readiness_poll_command([*through, nginx_ready_url(host)], NGINX_VERIFY_SECONDS, 0.1, host.python),
            _record_live(layout, new_ports),
            phase_marker("flipped"),
        ]
    )
    back = "; ".join([*_route_to(layout, host, old_ports), _record_live(layout, old_ports)])
    return (
        f'{phase_marker("flip")} && before=$(pgrep -P "$(cat {pid_file} 2>/dev/null || echo 0)" || true)'
        f" && {{ {{ {flip}; }} || {{ echo 'nginx flip failed: back on the old instances'; {back}; false; }}; }}"
    )


def _route_to(layout: Layout, host: Host, ports: tuple[int, ...]) -> list[str]:
    """Point nginx at `ports`: the slots' symlinks (over Unix sockets), then nginx's configuration,
    reloaded only if it changed (always over TCP)."""
    slots = [point_slots_command(host, ports)] if host.instance_listen == "unix" else []
    return [*slots, nginx_apply_command(layout, host, ports)]


def _record_live(layout: Layout, ports: tuple[int, ...]) -> str:
    return write_file_command(layout.live_ports, " ".join(str(p) for p in ports) + "\n")


def unflip_command(layout: Layout, host: Host, old_ports: tuple[int, ...]) -> str:
    """Send nginx's traffic back to the old instances (they never stopped) and record them live."""
    return " && ".join([*_route_to(layout, host, old_ports), _record_live(layout, old_ports)])

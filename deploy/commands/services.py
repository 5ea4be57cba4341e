"""The whole stack of a deploy root started or stopped: the @reboot line and the sandbox teardown."""

from __future__ import annotations

from deploy.commands.layout import Layout, q
from deploy.commands.nginx import _nginx
from deploy.commands.supervisor import SUPERVISORD, supervisorctl_command


def _live_programs(layout: Layout) -> str:
    """The supervisor programs of the live ports recorded on the host (state/live_ports)."""
    return f"$(sed 's/[0-9][0-9]*/app-&/g' {q(layout.live_ports)})"


def start_live_instances_command(layout: Layout) -> str:
    """After provisioning's `supervisorctl update`: a live program whose file changed (another
    command line, such as instance_listen) was stopped by the update and, not autostarting, would
    stay down behind an upstream that already names its new address. Start it again; running
    ones are left alone. Nothing to do before the first release."""
    return (
        f"if [ -s {q(layout.live_ports)} ] && [ -e {q(layout.current)} ]; then"
        f" {supervisorctl_command(layout, 'start')} {_live_programs(layout)} >/dev/null 2>&1; fi; true"
    )


def start_services_command(layout: Layout) -> str:
    """What @reboot runs: supervisord, the live instances (programs do not autostart), nginx."""
    programs = _live_programs(layout)
    return (
        f"{SUPERVISORD} -c {q(layout.supervisor_conf)}; "
        f"for attempt in 1 2 3 4 5 6 7 8 9 10; do {supervisorctl_command(layout, 'start')} {programs}"
        f" && break; sleep 1; done; {_nginx(layout)}"
    )


def stop_services_command(layout: Layout) -> str:
    """Stop supervisord (and with it the app instances) and nginx of this deploy root."""
    pid_file = q(f"{layout.root}/nginx/nginx.pid")
    return (
        f"{supervisorctl_command(layout, 'shutdown')} >/dev/null 2>&1;"
        f" if [ -s {pid_file} ]; then {_nginx(layout, '-s', 'quit')} 2>/dev/null; fi; true"
    )

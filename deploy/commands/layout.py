"""Where things live on a host: the deploy root's layout, its directories and files."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

q = shlex.quote


@dataclass(frozen=True)
class Layout:
    """Paths of the production shape under one deploy root (see ARCHITECTURE.md)."""

    root: str

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def venvs(self) -> str:
        return f"{self.root}/venvs"

    @property
    def current(self) -> str:
        return f"{self.root}/current"

    @property
    def shared(self) -> str:
        return f"{self.root}/shared"

    @property
    def env_file(self) -> str:
        return f"{self.root}/shared/.env"

    @property
    def logs(self) -> str:
        return f"{self.root}/shared/logs"

    @property
    def state(self) -> str:
        return f"{self.root}/state"

    @property
    def run(self) -> str:
        """The instances' Unix sockets (Host.instance_socket)."""
        return f"{self.root}/run"

    @property
    def ledger(self) -> str:
        return f"{self.root}/state/ledger.jsonl"

    @property
    def lock(self) -> str:
        return f"{self.root}/state/deploy.lock"

    @property
    def slots(self) -> str:
        """One symlink per instance slot, naming the release its program runs (Layout.slot)."""
        return f"{self.root}/slots"

    @property
    def prepare_pid(self) -> str:
        """The shell of a switch's prepare step while it runs, so an interrupted switch can stop it."""
        return f"{self.root}/state/prepare.pid"

    @property
    def live_ports(self) -> str:
        return f"{self.root}/state/live_ports"

    @property
    def maintenance_record(self) -> str:
        """The last maintenance window's record (deploy.ops.maintenance.model.record_path)."""
        return f"{self.root}/state/maintenance-last.json"

    @property
    def supervisor_conf(self) -> str:
        return f"{self.root}/supervisor/supervisord.conf"

    @property
    def supervisor_socket(self) -> str:
        return f"{self.root}/supervisor/supervisor.sock"

    @property
    def drain_pid(self) -> str:
        return f"{self.root}/state/drain.pid"

    @property
    def switch_log(self) -> str:
        return f"{self.logs}/switch.log"

    @property
    def nginx_conf(self) -> str:
        return f"{self.root}/nginx/nginx.conf"

    @property
    def nginx_upstream(self) -> str:
        return f"{self.root}/nginx/upstream.conf"

    def release(self, release_id: str) -> str:
        return f"{self.releases}/{release_id}"

    def venv(self, lock_hash: str) -> str:
        return f"{self.venvs}/{lock_hash}"

    def slot(self, port: int) -> str:
        """The release the program of `port` runs. A standby slot is repointed before its gate;
        a live one only changes by becoming standby, so supervisor's restart of a killed live
        instance, and @reboot, start what passed its gate."""
        return f"{self.slots}/{program_name(port)}"

    def program_conf(self, port: int) -> str:
        return f"{self.root}/supervisor/conf.d/{program_name(port)}.conf"

    def app_log(self, port: int) -> str:
        return f"{self.logs}/app-{port}.log"

    def program_output(self, port: int) -> str:
        return f"{self.logs}/supervisor/{program_name(port)}.out"


def program_name(port: int) -> str:
    return f"app-{port}"


def layout_command(layout: Layout) -> str:
    """Create the deploy-root layout; shared/ is 0700 because it holds the secrets file."""
    folders = [
        layout.releases,
        layout.venvs,
        layout.logs,
        f"{layout.logs}/supervisor",
        layout.state,
        f"{layout.root}/supervisor/conf.d",
        f"{layout.root}/nginx/tmp",
        layout.run,
        layout.slots,
    ]
    return f"mkdir -p {' '.join(q(f) for f in folders)} && chmod 700 {q(layout.shared)}"


def writable_root_command(layout: Layout) -> str:
    """Read-only check that the deploy root (or, before the first provision, the nearest folder
    that exists above it) is a folder the deploy user can write, so a host that answers SSH but
    could not be provisioned fails before any host changes."""
    return (
        f'd={q(layout.root)}; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; '
        f'[ -d "$d" ] && [ -w "$d" ] || {{ echo "$d is not a folder the deploy user can write" >&2; exit 1; }}'
    )


def write_file_command(path: str, content: str, mode: str = "644") -> str:
    """Write a whole file atomically (temp file, then rename) with the given mode."""
    tmp = f"{path}.tmp"
    return f"printf '%s' {q(content)} > {q(tmp)} && chmod {mode} {q(tmp)} && mv -f {q(tmp)} {q(path)}"


def install_env_file_command(layout: Layout, uploaded: str) -> str:
    """Move an uploaded secrets file into place with mode 0600 (shared/ is 0700 meanwhile)."""
    return f"chmod 600 {q(uploaded)} && mv -f {q(uploaded)} {q(layout.env_file)}"

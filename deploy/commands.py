"""Pure builders of every remote shell command and file the deploy tooling sends to a host.

Nothing here opens a connection or reads the clock: each function maps its arguments to a string,
so every command is unit-tested with golden strings and `--dry-run` prints exactly these. The
remote shell is POSIX sh (the deploy user's login shell runs it with -c).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from deploy.inventory import Host

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
RELEASE_ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]+$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LOCK_HELD_EXIT = 3
OPS_CLI = "deploy.ops.cli"
SUPERVISORD = "supervisord"
SUPERVISORCTL = "supervisorctl"
NGINX = "/usr/sbin/nginx"

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
    def live_ports(self) -> str:
        return f"{self.root}/state/live_ports"

    @property
    def maintenance_record(self) -> str:
        """The last maintenance window's record (deploy.ops.maintenance_model.record_path)."""
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

    def program_conf(self, port: int) -> str:
        return f"{self.root}/supervisor/conf.d/{program_name(port)}.conf"

    def app_log(self, port: int) -> str:
        return f"{self.logs}/app-{port}.log"

    def program_output(self, port: int) -> str:
        return f"{self.logs}/supervisor/{program_name(port)}.out"


def program_name(port: int) -> str:
    return f"app-{port}"


# -- templates -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{ *([a-z_]+) *\}\}")


def render(template_name: str, **values: object) -> str:
    """Fill `{{ name }}` placeholders; a missing or unused value is a bug, so both raise."""
    text = (TEMPLATES_DIR / template_name).read_text()
    used = set(_PLACEHOLDER.findall(text))
    missing = used - values.keys()
    unused = values.keys() - used
    if missing or unused:
        raise KeyError(f"{template_name}: missing {sorted(missing)}, unused {sorted(unused)}")
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def supervisord_conf(layout: Layout) -> str:
    return render("supervisord.conf.tmpl", deploy_root=layout.root)


def instance_listen_args(host: Host, port: int) -> str:
    """`python -m server`'s listening options for the instance slot `port` (inventory instance_listen)."""
    if host.instance_listen == "unix":
        return f"--unix {q(host.instance_socket(port))}"
    return f"--host {q(host.bind_address)} --port {port}"


def supervisor_program_conf(layout: Layout, host: Host, port: int) -> str:
    return render(
        "supervisor-program.conf.tmpl",
        deploy_root=layout.root,
        program=program_name(port),
        listen=instance_listen_args(host, port),
        port=port,
    )


def nginx_conf(layout: Layout, host: Host) -> str:
    return render(
        "nginx.conf.tmpl",
        deploy_root=layout.root,
        listen_address=host.address,
        nginx_port=host.nginx_port,
    )


# Idle connections each nginx worker keeps to the instances. Without them every proxied request
# opened a new TCP connection to Python: measured +0.3-0.5 ms CPU per request (docs/benchmarks.md);
# a cache smaller than the concurrency only halves that. The instances keep idle connections 75 s,
# longer than nginx's 60 s, so nginx always closes first and never reuses a closed one.
UPSTREAM_KEEPALIVE = 128


def upstream_server(host: Host, port: int) -> str:
    """nginx's address of an instance: unix:<socket> or bind_address:port."""
    return f"unix:{host.instance_socket(port)}" if host.instance_listen == "unix" else f"{host.bind_address}:{port}"


def nginx_upstream_conf(host: Host, live_ports: tuple[int, ...]) -> str:
    """The upstream block: nginx sends requests only to the live instances."""
    lines = ["upstream clicknback_app {"]
    # To the instance with fewer requests in flight: one that is paused (collecting garbage, or
    # waiting for a CPU) stops receiving new requests instead of queueing its share of them.
    lines.append("    least_conn;")
    lines += [f"    server {upstream_server(host, port)} max_fails=0;" for port in live_ports]
    lines.append(f"    keepalive {UPSTREAM_KEEPALIVE};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_live_ports(text: str, host: Host) -> tuple[int, ...]:
    """The live ports recorded on the host (state/live_ports), else the inventory's instance ports.

    A recorded port the inventory no longer knows (ports changed) falls back to the defaults too.
    """
    try:
        ports = tuple(int(word) for word in text.split())
    except ValueError:
        return host.instance_ports
    if len(ports) != len(host.instance_ports) or not set(ports) <= set(host.all_ports):
        return host.instance_ports
    return ports


# Debian's cron has no CRON_TZ: it schedules in the host's zone only (crontab(5): "cron will
# only handle tasks in a single timezone"). So every job fires each quarter hour and runs only when
# the UTC clock says so: every real zone's offset is a multiple of 15 minutes, and DST never
# shifts or repeats UTC. Each value is a `date -u` format and the UTC stamp it must print.
CRON_EVERY_QUARTER_HOUR = "*/15 * * * *"
UtcGuard = tuple[tuple[str, str, str], ...]  # (`date -u` format, test operator, value), all must hold
BACKUP_UTC_TIMES: dict[str, UtcGuard] = {
    "weekly": (("%u%H%M", "=", "70100"),),  # Sunday 01:00
    "daily": (("%H%M", "=", "0100"),),
    "hourly": (("%M", "=", "00"),),
}
ARCHIVE_LOGS_UTC_TIME: UtcGuard = (("%H%M", "=", "0030"),)
# The maintenance window: the first Sunday of the month (a Sunday, day 1-7), 02:00 UTC.
MAINTENANCE_UTC_TIME: UtcGuard = (("%u%H%M", "=", "70200"), ("%d", "-le", "7"))


def utc_time_guard(guard: UtcGuard) -> str:
    """A shell test that holds when the UTC clock matches `guard`. `%` is escaped: cron turns a
    bare `%` of a crontab line into a newline."""
    return " && ".join(
        f'[ "$(date -u +{date_format.replace("%", chr(92) + "%")})" {op} {value} ]' for date_format, op, value in guard
    )


def crontab_marker(layout: Layout) -> str:
    return f"clicknback {layout.root}"


def crontab_block(layout: Layout, host: Host, database_jobs: bool = True) -> str:
    """Every host archives its own logs and runs the maintenance window for its own steps (its logs,
    its release's dependency audit). The jobs on the shared database (the backup, the window's
    VACUUM/REINDEX, verify-backup and check-wallets) run from one host of the environment only
    (`database_jobs`); the others pass --no-shared-steps, or each would run once per host."""
    ops_prefix = f"cd {q(layout.current)} && ENV_FILE={q(layout.env_file)} ./.venv/bin/python -m {OPS_CLI}"
    cron_log = q(f"{layout.logs}/cron.log")

    def job(guard: UtcGuard, *commands: str) -> str:
        runs = " && ".join(f"{ops_prefix} {command} >> {cron_log} 2>&1" for command in commands)
        return f"{CRON_EVERY_QUARTER_HOUR} {utc_time_guard(guard)} && {runs}\n"

    jobs = job(ARCHIVE_LOGS_UTC_TIME, "archive-logs")
    if database_jobs:
        jobs += job(BACKUP_UTC_TIMES[host.backup_schedule], "backup --reason scheduled", "prune-backups")
        jobs += job(MAINTENANCE_UTC_TIME, "maintenance")
    else:
        jobs += job(MAINTENANCE_UTC_TIME, "maintenance --no-shared-steps")
    return render(
        "crontab.tmpl",
        marker=crontab_marker(layout),
        start_services=start_services_command(layout),
        jobs=jobs,
    )


# -- file and layout commands ----------------------------------------------------------------


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
    ]
    return f"mkdir -p {' '.join(q(f) for f in folders)} && chmod 700 {q(layout.shared)}"


def write_file_command(path: str, content: str, mode: str = "644") -> str:
    """Write a whole file atomically (temp file, then rename) with the given mode."""
    tmp = f"{path}.tmp"
    return f"printf '%s' {q(content)} > {q(tmp)} && chmod {mode} {q(tmp)} && mv -f {q(tmp)} {q(path)}"


def install_env_file_command(layout: Layout, uploaded: str) -> str:
    """Move an uploaded secrets file into place with mode 0600 (shared/ is 0700 meanwhile)."""
    return f"chmod 600 {q(uploaded)} && mv -f {q(uploaded)} {q(layout.env_file)}"


# -- releases --------------------------------------------------------------------------------


def check_tag(tag: str) -> str:
    """Tags become path components and shell words: only a safe alphabet is accepted."""
    if not TAG_PATTERN.match(tag):
        raise ValueError(f"tag {tag!r}: only letters, digits, '.', '_' and '-' are allowed")
    return tag


def release_id(deployed_at_compact: str, tag: str) -> str:
    """`20261127T010203Z-v1.2.3`: sorts by time, names the tag."""
    return f"{deployed_at_compact}-{check_tag(tag)}"


def release_metadata(tag: str, commit: str, deployed_at: str) -> str:
    return json.dumps({"version": tag, "commit": commit, "deployed_at": deployed_at}, sort_keys=True)


def upload_path(layout: Layout, rel_id: str) -> str:
    return f"{layout.releases}/.upload-{rel_id}.tar.gz"


def extract_release_command(layout: Layout, rel_id: str, metadata: str) -> str:
    """Unpack an uploaded `git archive` into releases/<id>/ and write RELEASE.json beside it."""
    archive, target = upload_path(layout, rel_id), layout.release(rel_id)
    return (
        f"rm -rf {q(target)} && mkdir -p {q(target)} && tar -xzf {q(archive)} -C {q(target)}"
        f" && rm -f {q(archive)} && printf '%s\\n' {q(metadata)} > {q(target + '/RELEASE.json')}"
    )


def build_venv_command(venv: str, requirements: str, python: str) -> str:
    """Reuse a venv whose `.complete` marker exists, else build it from a requirements file.

    The marker is written last, so a half-built venv (interrupted pip) is rebuilt next time.
    """
    marker = f"{venv}/.complete"
    build = (
        f"rm -rf {q(venv)} && {python} -m venv {q(venv)}"
        f" && {q(venv + '/bin/python')} -m pip install --quiet --no-input --disable-pip-version-check"
        f" -r {q(requirements)} && touch {q(marker)} && echo venv-built"
    )
    return f"{{ test -f {q(marker)} && echo venv-reused || {{ {build}; }}; }}"


def ensure_venv_command(layout: Layout, rel_id: str, lock_hash: str, python: str) -> str:
    """venvs/<sha256 of requirements.lock>, built once per lock file, linked as the release's .venv."""
    venv, release = layout.venv(lock_hash), layout.release(rel_id)
    return (
        build_venv_command(venv, f"{release}/requirements.lock", python)
        + f" && ln -sfn {q(venv)} {q(release + '/.venv')}"
    )


def switch_current_command(layout: Layout, rel_id: str) -> str:
    """Point `current` at a release atomically: build the new symlink aside, then rename over."""
    tmp = f"{layout.root}/.current.tmp"
    return f"ln -sfn {q(layout.release(rel_id))} {q(tmp)} && mv -T {q(tmp)} {q(layout.current)}"


def releases_to_prune(
    release_ids: list[str], keep: int, protected: set[str], bad: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """The releases to delete, oldest first.

    Kept: the newest `keep` releases that are not marked bad (rollback targets), the newest bad
    one (its code and logs explain the last failure), and `protected` (current, rollback target).
    Counting bad releases towards `keep` would let a run of failed deploys push out every good
    release to go back to.
    """
    newest_first = sorted(release_ids, reverse=True)
    kept = set(protected) | set([r for r in newest_first if r not in bad][:keep])
    kept |= set([r for r in newest_first if r in bad][:1])
    return sorted(r for r in release_ids if r not in kept)


def prune_command(layout: Layout, release_ids: list[str]) -> str:
    if not release_ids:
        return "true"
    return "rm -rf -- " + " ".join(q(layout.release(r)) for r in release_ids)


def venv_links_command(layout: Layout) -> str:
    """Prints the venvs on the host, then `--`, then the venv every release links to."""
    return (
        f"ls -1 {q(layout.venvs)} 2>/dev/null; echo --;"
        f' for link in {q(layout.releases)}/*/.venv; do readlink "$link" || true; done'
    )


def unused_venvs(listing: str) -> list[str]:
    """The venv folders (lock hashes) that no remaining release links to, from venv_links_command."""
    present, _, linked = listing.partition("--")
    in_use = {Path(line.strip()).name for line in linked.splitlines() if line.strip()}
    return sorted(name for name in present.split() if name not in in_use and re.fullmatch(r"[0-9a-f]{64}", name))


def prune_venvs_command(layout: Layout, lock_hashes: list[str]) -> str:
    if not lock_hashes:
        return "true"
    return "rm -rf -- " + " ".join(q(layout.venv(h)) for h in lock_hashes)


# -- lock and ledger -------------------------------------------------------------------------


def lock_acquire_command(layout: Layout, holder: str) -> str:
    """Create the lock file only if absent (noclobber = O_EXCL); otherwise print the holder.

    Exits LOCK_HELD_EXIT with the current holder's details on stdout when someone else holds it.
    """
    return (
        f"mkdir -p {q(layout.state)} && {{ ( set -C; printf '%s\\n' {q(holder)} > {q(layout.lock)} ) 2>/dev/null"
        f" || {{ cat {q(layout.lock)}; exit {LOCK_HELD_EXIT}; }}; }}"
    )


def lock_release_command(layout: Layout, token: str | None) -> str:
    """Remove the lock; with a token only when it is still ours (never someone else's lock)."""
    if token is None:
        return f"rm -f {q(layout.lock)}"
    return f"if grep -qF {q(token)} {q(layout.lock)} 2>/dev/null; then rm -f {q(layout.lock)}; fi"


def lock_status_command(layout: Layout) -> str:
    return f"cat {q(layout.lock)} 2>/dev/null || true"


def ledger_append_command(layout: Layout, line: str) -> str:
    return f"mkdir -p {q(layout.state)} && printf '%s\\n' {q(line)} >> {q(layout.ledger)}"


# -- supervisor and nginx --------------------------------------------------------------------


def supervisorctl_command(layout: Layout, *args: str) -> str:
    return " ".join([SUPERVISORCTL, "-c", q(layout.supervisor_conf), *(q(a) for a in args)])


def supervisor_ensure_running_command(layout: Layout) -> str:
    """Start this deploy root's supervisord unless it answers, then apply program changes."""
    return (
        f"{{ {supervisorctl_command(layout, 'pid')} >/dev/null 2>&1"
        f" || {SUPERVISORD} -c {q(layout.supervisor_conf)}; }}"
        f" && {supervisorctl_command(layout, 'reread')} >/dev/null"
        f" && {supervisorctl_command(layout, 'update')}"
    )


def remove_stale_programs_command(layout: Layout, ports: tuple[int, ...]) -> str:
    """Delete program files of instances no longer in the inventory (supervisor `update` stops them)."""
    keep = " ".join(f"! -name {q(program_name(port) + '.conf')}" for port in ports)
    return f"find {q(layout.root + '/supervisor/conf.d')} -name 'app-*.conf' {keep} -delete"


def instance_pid_command(layout: Layout, port: int) -> str:
    return supervisorctl_command(layout, "pid", program_name(port))


def _nginx(layout: Layout, *args: str) -> str:
    return " ".join(
        [
            NGINX,
            "-p",
            q(f"{layout.root}/nginx/"),
            "-c",
            q(layout.nginx_conf),
            "-e",
            q(f"{layout.logs}/nginx-error.log"),
            *args,
        ]
    )


def nginx_reload_command(layout: Layout) -> str:
    """Check the config, then reload the running master or start one (needs no root)."""
    pid_file = q(f"{layout.root}/nginx/nginx.pid")
    return (
        f'{_nginx(layout, "-q", "-t")} && if [ -s {pid_file} ] && kill -0 "$(cat {pid_file})" 2>/dev/null;'
        f" then {_nginx(layout, '-s', 'reload')}; else {_nginx(layout)}; fi"
    )


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


# Supervisor is driven through its XML-RPC socket with curl rather than supervisorctl: a
# supervisorctl run is a Python start-up (0.3-1 s on a loaded host), and its `start` blocks for
# `startsecs` per program. The readiness gate is the proof that an instance is up.


def xml_escape(text: str) -> str:
    # Not xml.sax.saxutils: it imports urllib and http, 30 ms of start-up for every task.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xmlrpc_value(value: object) -> str:
    if isinstance(value, bool):
        return f"<value><boolean>{int(value)}</boolean></value>"
    if isinstance(value, str):
        return f"<value><string>{xml_escape(value)}</string></value>"
    if isinstance(value, list):
        return "<value><array><data>" + "".join(_xmlrpc_value(v) for v in value) + "</data></array></value>"
    if isinstance(value, dict):
        members = "".join(f"<member><name>{xml_escape(k)}</name>{_xmlrpc_value(v)}</member>" for k, v in value.items())
        return f"<value><struct>{members}</struct></value>"
    raise TypeError(f"no XML-RPC encoding for {value!r}")


def xmlrpc_request(method: str, *params: object) -> str:
    """An XML-RPC methodCall document (the subset supervisor's API needs: strings, booleans, arrays)."""
    encoded = "".join(f"<param>{_xmlrpc_value(p)}</param>" for p in params)
    return f'<?xml version="1.0"?><methodCall><methodName>{method}</methodName><params>{encoded}</params></methodCall>'


def supervisor_multicall(calls: list[tuple[str, list]]) -> str:
    """One request carrying several supervisor calls, executed in order by supervisord."""
    return xmlrpc_request("system.multicall", [{"methodName": m, "params": p} for m, p in calls])


def supervisor_rpc_command(layout: Layout, request: str) -> str:
    """POST an XML-RPC request to this deploy root's supervisord; prints the response."""
    return (
        f"curl -sS -m 60 --unix-socket {q(layout.supervisor_socket)} -H 'Content-Type: text/xml'"
        f" --data-binary {q(request)} http://localhost/RPC2"
    )


def stop_instances_command(layout: Layout, ports: tuple[int, ...]) -> str:
    """Stop instances in parallel, each returning once its process has exited (graceful: SIGTERM,
    then SIGKILL after stopwaitsecs). One that is not running is a no-op (a fault we ignore)."""
    stops = [
        supervisor_rpc_command(layout, xmlrpc_request("supervisor.stopProcess", program_name(p), True))
        + " >/dev/null 2>&1"
        for p in ports
    ]
    return "{ " + " ".join(f"{s} &" for s in stops) + " wait; }"


def drain_in_background_command(layout: Layout, ports: tuple[int, ...], reason: str) -> str:
    """Stop instances in a background job that outlives the SSH session: nginx no longer routes to
    them, so nobody waits for their in-flight requests to finish. The job's pid is in
    state/drain.pid (the next start waits for it); its duration goes to shared/logs/switch.log."""
    names = " ".join(program_name(p) for p in ports)
    job = (
        f"began=$(date +%s.%N); {stop_instances_command(layout, ports)};"
        f' echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) stopped {names} ({reason}) in'
        f' $(awk "BEGIN {{ printf \\"%.2f\\", $(date +%s.%N) - $began }}")s" >> {q(layout.switch_log)};'
        f' if [ "$(cat {q(layout.drain_pid)} 2>/dev/null)" = "$$" ]; then rm -f {q(layout.drain_pid)}; fi'
    )
    # Braced: a bare trailing `&` would send the whole `A && B && ...` chain to the background.
    return f"{{ nohup sh -c {q(job)} >/dev/null 2>&1 & echo $! > {q(layout.drain_pid)}; }}"


DRAIN_WAIT_SECONDS = 40  # longer than stopwaitsecs (30): by then supervisor has SIGKILLed


def start_instances_command(layout: Layout, ports: tuple[int, ...]) -> str:
    """Start instances (from `current`) without waiting for supervisor's startsecs.

    A standby port may still be draining from the previous switch: wait for that background stop
    and for any STOPPING state to end, because supervisor "starts" a STOPPING program by doing
    nothing. Then stop any leftover (a switch cut short), and start all of them in one request;
    any fault (spawn error, bad name) fails the step and is printed.
    """
    names = [program_name(p) for p in ports]
    states = supervisor_rpc_command(layout, supervisor_multicall([("supervisor.getProcessInfo", [n]) for n in names]))
    start = supervisor_rpc_command(
        layout, supervisor_multicall([("supervisor.startProcess", [n, False]) for n in names])
    )
    pid = q(layout.drain_pid)
    wait_for_drain = (
        f'( deadline=$(( $(date +%s) + {DRAIN_WAIT_SECONDS} )); while {{ [ -s {pid} ] && kill -0 "$(cat {pid})"'
        f" 2>/dev/null; }} || {states} | grep -q '<string>STOPPING</string>'; do"
        f' if [ "$(date +%s)" -ge "$deadline" ]; then echo "{" ".join(names)} still stopping after'
        f' {DRAIN_WAIT_SECONDS}s"; exit 1; fi; sleep 0.1; done )'
    )
    started = f'{{ out=$({start}) && ! printf \'%s\' "$out" | grep -q faultCode || {{ echo "supervisor refused to start {" ".join(names)}: $out"; false; }}; }}'
    return " && ".join([wait_for_drain, stop_instances_command(layout, ports), started])


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
    """Point `current` at `rel_id` and bring it up on `new_ports` beside the live instances, gated.

    1. switch `current` (the programs run whatever it points at);
    2. start the new instances;
    3. poll each one's /health/ready until 200 or the host's health_timeout.
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
    return " && ".join(
        [
            phase_marker("begin"),
            switch_current_command(layout, rel_id),
            start_instances_command(layout, new_ports),
            phase_marker("started"),
            gate,
            phase_marker("ready"),
        ]
    )


NGINX_VERIFY_SECONDS = 10


def nginx_ready_url(host: Host) -> str:
    return f"http://{host.address}:{host.nginx_port}/health/ready"


def nginx_new_workers_command(layout: Layout, before_var: str = "before") -> str:
    """Wait until the nginx master has a worker that was not there before the reload: the new
    configuration is in force (a reload only signals the master; a config it rejects keeps the
    old workers, and this times out)."""
    pid_file = q(f"{layout.root}/nginx/nginx.pid")
    return (
        f'( deadline=$(( $(date +%s) + 5 )); until pgrep -P "$(cat {pid_file} 2>/dev/null || echo 0)"'
        f' | grep -qvxF -e "${{{before_var}:-none}}"; do if [ "$(date +%s)" -ge "$deadline" ]; then'
        f" echo 'nginx did not start workers with the new configuration within 5s'; exit 1; fi; sleep 0.05; done )"
    )


def flip_command(layout: Layout, host: Host, new_ports: tuple[int, ...], old_ports: tuple[int, ...]) -> str:
    """Send nginx's traffic to `new_ports`, verify it through nginx, record them as live.

    The old instances still run, so when any step fails the upstream and state/live_ports go back
    to them and the command exits non-zero: nginx is left as it was.
    """
    pid_file = q(f"{layout.root}/nginx/nginx.pid")
    upstream, reload, record_live = _route_to(layout, host, new_ports)
    flip = " && ".join(
        [
            upstream,
            reload,
            nginx_new_workers_command(layout),
            readiness_poll_command([nginx_ready_url(host)], NGINX_VERIFY_SECONDS, 0.1, host.python),
            record_live,
            phase_marker("flipped"),
        ]
    )
    back = "; ".join(_route_to(layout, host, old_ports))
    return (
        f'{phase_marker("flip")} && before=$(pgrep -P "$(cat {pid_file} 2>/dev/null || echo 0)" || true)'
        f" && {{ {{ {flip}; }} || {{ echo 'nginx flip failed: back on the old instances'; {back}; false; }}; }}"
    )


def _route_to(layout: Layout, host: Host, ports: tuple[int, ...]) -> list[str]:
    """Write the upstream for `ports`, reload nginx, record `ports` as live."""
    return [
        write_file_command(layout.nginx_upstream, nginx_upstream_conf(host, ports)),
        nginx_reload_command(layout),
        write_file_command(layout.live_ports, " ".join(str(p) for p in ports) + "\n"),
    ]


def unflip_command(layout: Layout, host: Host, old_ports: tuple[int, ...]) -> str:
    """Send nginx's traffic back to the old instances (they never stopped) and record them live."""
    return " && ".join(_route_to(layout, host, old_ports))


# -- host state, read in one round trip ------------------------------------------------------

_SECTION = "::clicknback::"


@dataclass(frozen=True)
class HostState:
    """What the tooling needs to know about a host before it changes anything."""

    current: str | None
    releases: list[str]
    live_ports_text: str
    ledger_text: str
    env_file_exists: bool
    migration_heads: dict[str, str]
    metadata: dict[str, str]


def read_state_command(layout: Layout) -> str:
    """Print `current`, the releases (with each one's newest migration and RELEASE.json), the live
    ports, whether the secrets file exists, and the ledger, as sections of one output."""
    models = "migrations/models"
    per_release = (
        f"for rel in $(ls -1 {q(layout.releases)} 2>/dev/null | grep -E {q(RELEASE_ID_PATTERN.pattern)}); do"
        f" dir={q(layout.releases)}/$rel;"
        f' echo "$rel $(ls -1 "$dir/{models}" 2>/dev/null | grep -E \'^[0-9]+_.*[.]py$\' | sort -n | tail -n 1)";'
        f' echo "{_SECTION}metadata $rel"; cat "$dir/RELEASE.json" 2>/dev/null; echo; echo "{_SECTION}releases"; done'
    )
    # Each `cat` is followed by an echo: a file without a final newline must not swallow a marker.
    return "; ".join(
        [
            f"echo '{_SECTION}current'",
            f"readlink {q(layout.current)} 2>/dev/null",
            f"echo '{_SECTION}releases'",
            per_release,
            f"echo '{_SECTION}live_ports'",
            f"cat {q(layout.live_ports)} 2>/dev/null",
            "echo",
            f"echo '{_SECTION}env_file'",
            f"{{ test -f {q(layout.env_file)} && echo yes; }}",
            f"echo '{_SECTION}ledger'",
            f"cat {q(layout.ledger)} 2>/dev/null",
            "echo",
        ]
    )


def parse_state(text: str) -> HostState:
    sections: dict[str, list[str]] = {}
    metadata: dict[str, list[str]] = {}
    target = sections.setdefault("", [])
    for line in text.splitlines():
        if line.startswith(_SECTION):
            name, _, arg = line[len(_SECTION) :].partition(" ")
            target = metadata.setdefault(arg, []) if name == "metadata" else sections.setdefault(name, [])
        else:
            target.append(line)
    current = "\n".join(sections.get("current", [])).strip()
    heads: dict[str, str] = {}
    for line in sections.get("releases", []):
        rel, _, head = line.strip().partition(" ")
        if rel:
            heads[rel] = head.strip()
    return HostState(
        current=Path(current).name if current else None,
        releases=sorted(heads),
        live_ports_text="\n".join(sections.get("live_ports", [])),
        ledger_text="\n".join(sections.get("ledger", [])),
        env_file_exists="yes" in sections.get("env_file", []),
        migration_heads=heads,
        metadata={rel: "\n".join(lines).strip() for rel, lines in metadata.items()},
    )


# -- crontab ---------------------------------------------------------------------------------


CRONTAB_LOCK = "$HOME/.clicknback-crontab.lock"


def crontab_install_command(marker: str, block: str) -> str:
    """Replace this deploy root's marked block in the user's crontab (or drop it: block="").

    Read, edit and write happen in one remote command under flock: deploy roots that share a user
    (the sandbox's two hosts) provision in parallel without losing each other's block.
    """
    keep_others = (
        f"awk -v begin={q('# BEGIN ' + marker)} -v end={q('# END ' + marker)}"
        " '$0==begin{skip=1;next} $0==end{skip=0;next} !skip'"
    )
    return (
        "command -v crontab >/dev/null || { echo 'crontab not found: apt-get install cron' >&2; exit 127; };"
        f' exec 9>>"{CRONTAB_LOCK}" && flock 9'
        f" && {{ crontab -l 2>/dev/null | {keep_others}; printf '%s' {q(block)}; }} | crontab -"
    )


# -- health and logs -------------------------------------------------------------------------


FAST_POLL_INTERVAL = 0.1
FAST_POLL_SECONDS = 5

# The readiness poller runs on the host with its Python (stdlib only). One process polls every
# URL of a gate: a poll costs a connect, where a `curl` run per poll costs about 11 ms of CPU,
# which booting instances on a small host feel (4 instances at 10 polls/s = half a core).
READINESS_POLLER = r"""
import http.client, socket, sys, time
from urllib.parse import unquote, urlsplit


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def probe(url):
    parts = urlsplit(url)
    if parts.scheme == "http+unix":  # http+unix://<%-encoded socket path>/path
        connection = UnixHTTPConnection(unquote(parts.netloc), timeout=2)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=2)
    try:
        connection.request("GET", (parts.path or "/") + ("?" + parts.query if parts.query else ""))
        response = connection.getresponse()
        return "%03d" % response.status, response.read(600).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return "000", ""
    finally:
        connection.close()


def fatal(socket_path, program):
    body = ("<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getProcessInfo</methodName><params>"
            "<param><value><string>%s</string></value></param></params></methodCall>" % program)
    connection = UnixHTTPConnection(socket_path)
    try:
        connection.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
        return b"<string>FATAL</string>" in connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def main(timeout, interval, fast_for, fast_interval, socket_path, *urls_and_programs):
    timeout, interval, fast_for, fast_interval = map(float, (timeout, interval, fast_for, fast_interval))
    pending = dict(zip(urls_and_programs[0::2], urls_and_programs[1::2]))
    last, dead = {}, {}
    began = time.monotonic()
    while True:
        for url in list(pending):
            last[url] = probe(url)
            if last[url][0] == "200":
                del pending[url]
        elapsed = time.monotonic() - began
        if not pending or elapsed >= timeout:
            break
        if elapsed < fast_for:
            time.sleep(fast_interval)
            continue
        dead = {url: program for url, program in pending.items()
                if socket_path and program and fatal(socket_path, program)}
        if dead:
            break
        time.sleep(interval)
    for url in pending:
        code, body = last[url]
        reason = " (%s is FATAL: it exited on every start)" % dead[url] if url in dead else ""
        print("%s answered HTTP %s after %ds%s:" % (url, code, elapsed, reason))
        print(body)
    return 1 if pending else 0


sys.exit(main(*sys.argv[1:]))
"""


def readiness_poll_command(
    urls: list[str],
    timeout: int,
    interval: float,
    python: str = "python3",
    supervisor_socket: str = "",
    programs: list[str] | None = None,
    fast_for: float = FAST_POLL_SECONDS,
) -> str:
    """Poll URLs on the host until each answers 200 or `timeout` seconds pass.

    Every FAST_POLL_INTERVAL for the first `fast_for` seconds (an instance usually becomes ready
    then, and a 1 s poll would add up to a second to every switch), then every `interval`. From
    then on it also stops early when supervisor (at `supervisor_socket`) has marked the URL's
    program FATAL: it died on every start, so waiting out the timeout would prove nothing more.
    Exits 0 when all are healthy; otherwise prints, per URL that is not, the last status and
    body (`<url> answered HTTP <status> after <n>s...:`) and exits 1.
    """
    programs = programs or [""] * len(urls)
    pairs = " ".join(f"{q(url)} {q(program)}" for url, program in zip(urls, programs))
    return (
        f"{python} -I -S -c {q(READINESS_POLLER)} {int(timeout)} {interval:g} {fast_for:g}"
        f" {FAST_POLL_INTERVAL:g} {q(supervisor_socket)} {pairs}"
    )


def health_poll_command(url: str, timeout: int, interval: float) -> str:
    """Poll one URL on the host until it answers 200 or `timeout` seconds pass (see above)."""
    return readiness_poll_command([url], timeout, interval)


def curl_target(url: str) -> str:
    """curl's arguments for an instance URL; http+unix://<%-encoded socket>/path goes through the socket."""
    parts = urlsplit(url)
    if parts.scheme != "http+unix":
        return q(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return f"--unix-socket {q(unquote(parts.netloc))} {q('http://localhost' + (path or '/'))}"


def probe_command(url: str) -> str:
    """One probe: prints `<status> <body>` (status 000 when nothing answers)."""
    return (
        f"body=$(mktemp) && code=$(curl -s -o \"$body\" -w '%{{http_code}}' -m 3 {curl_target(url)});"
        f' printf \'%s \' "$code"; head -c 600 "$body"; echo; rm -f "$body"'
    )


def tail_logs_command(layout: Layout, ports: tuple[int, ...], lines: int, follow: bool) -> str:
    """The instances' JSON logs (live and standby ports: a slot's log moves between them)."""
    files = " ".join(q(layout.app_log(port)) for port in ports)
    if follow:
        return f"tail -n {int(lines)} -F {files}"
    return f"tail -n {int(lines)} {files} 2>/dev/null; true"


def instance_output_tail_command(layout: Layout, port: int, lines: int) -> str:
    """The last lines an instance wrote (stdout+stderr as supervisor captured them)."""
    return f"tail -n {int(lines)} {q(layout.program_output(port))} 2>/dev/null || true"


# -- migrations ------------------------------------------------------------------------------


def ops_command(layout: Layout, rel_id: str, *args: str) -> str:
    """Run the ops CLI of one release with the host's secrets file."""
    release = layout.release(rel_id)
    return f"cd {q(release)} && ENV_FILE={q(layout.env_file)} ./.venv/bin/python -m {OPS_CLI} " + " ".join(
        q(a) for a in args
    )


def migrate_command(layout: Layout, rel_id: str) -> str:
    return ops_command(layout, rel_id, "migrate")


def migrate_to_command(layout: Layout, rel_id: str, number: int) -> str:
    return ops_command(layout, rel_id, "migrate", "--to", str(int(number)))


def migrate_status_command(layout: Layout, rel_id: str) -> str:
    return ops_command(layout, rel_id, "migrate", "--status")


def migration_number(file_name: str | None) -> int | None:
    """`2_20261127_add_x.py` -> 2; None stays None (an empty database)."""
    if not file_name:
        return None
    head = Path(file_name).name.split("_", 1)[0]
    return int(head) if head.isdigit() else None


def database_ahead_of(status: dict) -> bool:
    """True when the database holds a migration newer than this release's code head."""
    db_number = migration_number(status.get("db_head"))
    code_number = status.get("code_head_number")
    if code_number is None:
        code_number = migration_number(status.get("code_head"))
    return db_number is not None and code_number is not None and db_number > code_number


# -- first-time system setup (root; printed or dry-run) ---------------------------------------

SYSCTL_FILE = "/etc/sysctl.d/60-clicknback.conf"
AUTOGROUP_KNOB = "/proc/sys/kernel/sched_autogroup_enabled"


def sysctl_command() -> str:
    """The host's kernel settings, in a file sysctl applies at every boot.

    - ip_unprivileged_port_start=80: the unprivileged nginx listens on port 80.
    - sched_autogroup_enabled=0: autogroup is a desktop feature that splits the CPU fairly between
      sessions. PostgreSQL (its own session under systemd) and the app (supervisord's) then get a
      core each when both are busy, however the work is divided, and a backend that waits for its
      group's turn holds its request: on the 2-core bench, ingestion's p99 was 109-144 ms without
      it against 214-313 ms with it, wallet summary 17-24 against 27-41 ms (docs/benchmarks.md).
      Written only where the kernel has the knob, since sysctl fails on an unknown key.
    """
    return (
        f"{{ echo 'net.ipv4.ip_unprivileged_port_start=80';"
        f" [ ! -e {AUTOGROUP_KNOB} ] || echo 'kernel.sched_autogroup_enabled=0'; }}"
        f" > {SYSCTL_FILE} && sysctl --system >/dev/null"
    )


def system_setup_commands(host: Host, database: str = "clicknback") -> list[str]:
    """What a fresh Debian/Ubuntu VPS needs once, as root. `provision --system` runs these, again
    on an existing host too: every command is idempotent.

    curl (with --unix-socket) drives supervisord and python3 polls readiness; procps gives the
    switch `pgrep`, to see nginx's new workers after a reload.
    """
    user = q(host.ssh_user)
    role_exists = f"psql -tAc \\\"SELECT 1 FROM pg_roles WHERE rolname='{database}'\\\" | grep -q 1"
    return [
        "apt-get update",
        "apt-get install -y --no-install-recommends python3 python3-venv curl git nginx-light"
        " supervisor cron postgresql zstd procps ufw",
        # The per-deploy-root nginx/supervisord of the deploy user replace the system ones.
        "systemctl disable --now nginx supervisor || true",
        f"id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}",
        # The deploy user accepts the keys the admin logs in with. Under `sudo -n sh -c` a `~` is
        # root's home, so the admin is $SUDO_USER (root itself when it logs in as root).
        f'admin_home=$(getent passwd "${{SUDO_USER:-$(id -un)}}" | cut -d: -f6)'
        f" && deploy_home=$(getent passwd {user} | cut -d: -f6)"
        f' && install -d -m 700 -o {user} -g {user} "$deploy_home/.ssh"'
        f' && {{ [ "$admin_home" = "$deploy_home" ] || install -m 600 -o {user} -g {user}'
        f' "$admin_home/.ssh/authorized_keys" "$deploy_home/.ssh/authorized_keys"; }}',
        f"install -d -o {user} -g {user} -m 755 {q(host.deploy_root)}",
        "timedatectl set-timezone UTC",
        sysctl_command(),
        # CREATEDB (never superuser or createrole): verify-backup and `restore --target` create
        # their scratch database as the app's role. ALTER grants it on hosts set up before.
        f'su postgres -c "{role_exists}'
        f' || createuser --no-superuser --createdb --no-createrole {database}"'
        f" && su postgres -c \"psql -qc 'ALTER ROLE {database} CREATEDB'\"",
        f'su postgres -c "psql -tAc \\"SELECT 1 FROM pg_database WHERE datname=\'{database}\'\\" | grep -q 1'
        f' || createdb --owner={database} {database}"',
        # Firewall: only the inventory's SSH port and nginx's port from outside (the nginx site
        # serves plain HTTP on nginx_port; there is no TLS listener). App ports stay on loopback.
        # Allowed before enabling, so the SSH session that runs this is never cut off.
        f"ufw allow {int(host.ssh_port)}/tcp && ufw allow {int(host.nginx_port)}/tcp && ufw --force enable",
    ]

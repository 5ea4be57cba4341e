"""supervisord and its programs: configuration, supervisorctl, and XML-RPC calls to start and stop instances."""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from deploy.commands.layout import Layout, program_name, q
from deploy.commands.templates import render
from deploy.inventory import Host

SUPERVISORD = "supervisord"
SUPERVISORCTL = "supervisorctl"


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
        slot=layout.slot(port),
        listen=instance_listen_args(host, port),
        port=port,
    )


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


# Supervisor is driven through its XML-RPC socket with curl rather than supervisorctl: a
# supervisorctl run pays a Python start-up, and its `start` blocks for `startsecs` per program
# (docs/adr/0004). The readiness gate is the proof that an instance is up.


def xmlrpc_request(method: str, *params: Any) -> str:
    """An XML-RPC methodCall document, as supervisord's own clients encode it."""
    return xmlrpc.client.dumps(params, method)


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
    """Start instances (each from its slot link) without waiting for supervisor's startsecs.

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

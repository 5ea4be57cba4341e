"""nginx in front of the instances: its configuration, the upstream of the live ports, reload and verify."""

from __future__ import annotations

from urllib.parse import quote

from deploy.commands.layout import Layout, q, write_file_command
from deploy.commands.templates import render
from deploy.inventory import Host
from server.listen import PROXY_KEEPALIVE_SECONDS

NGINX = "/usr/sbin/nginx"


def nginx_conf(layout: Layout, host: Host) -> str:
    return render(
        "nginx.conf.tmpl",
        deploy_root=layout.root,
        listen_address=host.address,
        nginx_port=host.nginx_port,
    )


# Idle connections each nginx worker keeps to the instances. Without them every proxied request
# opens a new TCP connection to Python, which costs CPU on both sides (docs/benchmarks.md); a
# cache smaller than the concurrency keeps part of that cost. nginx closes one after
# PROXY_KEEPALIVE_SECONDS idle, long before the instances would (75 s), so it never sends on a
# connection an instance closed; a stopping instance closes them only after that (server/drain.py).
UPSTREAM_KEEPALIVE = 128


def slot_socket(host: Host, port: int) -> str:
    """The stable Unix socket path of the slot that `port` belongs to (live or standby): a symlink
    the switch repoints at the serving instance's socket, so nginx's upstream never changes."""
    index = host.instance_ports.index(port) if port in host.instance_ports else host.standby_ports.index(port)
    return f"{host.deploy_root}/run/slot-{index}.sock"


def upstream_server(host: Host, port: int) -> str:
    """nginx's address of the slot serving `port`: unix:<slot symlink>, or bind_address:port."""
    return f"unix:{slot_socket(host, port)}" if host.instance_listen == "unix" else f"{host.bind_address}:{port}"


def nginx_upstream_conf(host: Host, live_ports: tuple[int, ...]) -> str:
    """The upstream block: nginx sends requests only to the live instances.

    Over Unix sockets it names the slots' symlinks, the same whichever ports are live, so a switch
    only repoints symlinks; over TCP it names the live ports, and a switch rewrites it and reloads.
    """
    lines = ["upstream clicknback_app {"]
    # To the instance with fewer requests in flight: one that is paused (collecting garbage, or
    # waiting for a CPU) stops receiving new requests instead of queueing its share of them.
    lines.append("    least_conn;")
    lines += [f"    server {upstream_server(host, port)} max_fails=0;" for port in live_ports]
    lines.append(f"    keepalive {UPSTREAM_KEEPALIVE};")
    lines.append(f"    keepalive_timeout {PROXY_KEEPALIVE_SECONDS}s;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def point_slots_command(host: Host, ports: tuple[int, ...]) -> str:
    """Repoint each slot's symlink at the instance on `ports`, each one atomically (a new symlink
    renamed over the old: rename(2)), so nginx's next connection to a slot reaches the instance
    and no connect ever finds the path missing. Connections nginx already holds are untouched."""
    steps = []
    for port in ports:
        slot = slot_socket(host, port)
        steps.append(
            f"rm -f {q(slot + '.new')} && ln -s app-{port}.sock {q(slot + '.new')} && mv -T {q(slot + '.new')} {q(slot)}"
        )
    return " && ".join(steps)


def slot_ready_urls(host: Host, ports: tuple[int, ...]) -> list[str]:
    """The readiness URLs of `ports`' instances reached through their slots, the way nginx reaches them."""
    return [
        host.ready_url_for(port).replace(
            host.instance_url(port), "http+unix://" + quote(slot_socket(host, port), safe="")
        )
        for port in ports
    ]


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


def nginx_apply_command(layout: Layout, host: Host, live_ports: tuple[int, ...]) -> str:
    """nginx running on the upstream of `live_ports`, reloaded only when it must be.

    Over Unix sockets the upstream names the slots, so after the first switch it is already in
    place: nginx is then only tested (`nginx -t`: a configuration the next start or reboot would
    reject fails the switch now, while the old instances still run) and keeps every client
    connection. It is written and reloaded (waiting for the new workers) when it differs, which
    over TCP is every switch, or when nginx is not running.
    """
    text = nginx_upstream_conf(host, live_ports)
    pid_file = q(f"{layout.root}/nginx/nginx.pid")
    in_place = (
        f"printf '%s' {q(text)} | cmp -s - {q(layout.nginx_upstream)}"
        f' && [ -s {pid_file} ] && kill -0 "$(cat {pid_file})" 2>/dev/null'
    )
    reload = " && ".join(
        [
            write_file_command(layout.nginx_upstream, text),
            nginx_reload_command(layout),
            nginx_new_workers_command(layout),
        ]
    )
    return f"if {in_place}; then {_nginx(layout, '-q', '-t')}; else {reload}; fi"

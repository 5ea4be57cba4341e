"""nginx in front of the instances: its configuration, the upstream of the live ports, reload and verify."""

from __future__ import annotations

from deploy.commands.layout import Layout, q
from deploy.commands.templates import render
from deploy.inventory import Host

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
# cache smaller than the concurrency keeps part of that cost. The instances keep idle connections
# 75 s, longer than nginx's 60 s, so nginx always closes first and never reuses a closed one.
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

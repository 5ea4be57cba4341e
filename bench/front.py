"""The front of the benchmarked service: nginx over N instances, configured as production ships it.

The nginx configuration is rendered by the production renderer itself (deploy.commands.nginx_conf
and nginx_upstream_conf, the same functions `invoke provision` and the release switch use), for a
deploy root under the bench's temp dir and a loopback listen port. So the bench measures exactly the
proxy settings production runs; only the paths and the port differ. The builders here are pure
(golden-tested in bench/tests/test_harness.py); NginxFront only runs what they build.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.commands import NGINX, Layout, nginx_conf, nginx_upstream_conf, point_slots_command
from deploy.inventory import HOST_DEFAULTS, Host

LOOPBACK = "127.0.0.1"


def bench_host(
    deploy_root: str,
    nginx_port: int,
    instance_ports: tuple[int, ...],
    instance_listen: str = HOST_DEFAULTS["instance_listen"],
) -> Host:
    """A production-default host (deploy/inventory.py HOST_DEFAULTS) moved onto loopback and a temp root:
    the instances on Unix sockets under it (Host.instance_socket), or with "tcp" on loopback ports."""
    values = {
        **HOST_DEFAULTS,
        "instance_ports": tuple(instance_ports),
        "standby_ports": tuple(port + 100 for port in instance_ports),
        "deploy_root": deploy_root,
        "nginx_port": nginx_port,
        "bind_address": LOOPBACK,
        "instance_listen": instance_listen,
    }
    return Host(name="bench", address=LOOPBACK, **values)


def upstream_conf(host: Host, upstream_keepalive: int = 0) -> str:
    """Production's upstream block; `upstream_keepalive` > 0 replaces its idle-connection cache size
    (an experiment). 0 (the default) is exactly what production runs (deploy.commands.UPSTREAM_KEEPALIVE).
    """
    text = nginx_upstream_conf(host, host.instance_ports)
    if upstream_keepalive <= 0:
        return text
    lines = text.splitlines(keepends=True)
    ours = f"    keepalive {upstream_keepalive};\n"
    kept = [i for i, line in enumerate(lines) if line.strip().startswith("keepalive ")]
    if kept:
        lines[kept[0]] = ours  # in place: its keepalive_timeout stays as production has it
        return "".join(line for i, line in enumerate(lines) if i not in kept[1:])
    closing = text.rindex("}")
    return text[:closing] + ours + text[closing:]


CREDENTIALS_LIMIT = "limit_req zone=clicknback_credentials"


def without_credentials_limit(conf: str) -> str:
    """Production's conf minus its per-address limit on login and registration: the bench's one
    client address stands for many clients, and would measure nginx's 429 instead of logins."""
    return "".join(line for line in conf.splitlines(keepends=True) if CREDENTIALS_LIMIT not in line)


def front_files(
    layout: Layout, host: Host, upstream_keepalive: int = 0, credentials_limit: bool = True
) -> dict[str, str]:
    """Every file nginx reads, by absolute path: the main conf and the included upstream block."""
    conf = nginx_conf(layout, host)
    if not credentials_limit:
        conf = without_credentials_limit(conf)
    return {layout.nginx_conf: conf, layout.nginx_upstream: upstream_conf(host, upstream_keepalive)}


def front_dirs(layout: Layout) -> list[str]:
    """Folders the rendered conf points into (pid, temp paths, logs); layout_command makes them in production."""
    return [f"{layout.root}/nginx/tmp", layout.logs]


def nginx_argv(layout: Layout, binary: str = NGINX) -> list[str]:
    """Production's nginx invocation (deploy/commands/nginx.py _nginx), kept in the foreground as our child."""
    return [
        binary,
        "-p",
        f"{layout.root}/nginx/",
        "-c",
        layout.nginx_conf,
        "-e",
        f"{layout.logs}/nginx-error.log",
        "-g",
        "daemon off;",
    ]


@dataclass
class NginxFront:
    """Runs nginx over the given instance ports; `start` returns once a request through it succeeds."""

    root: Path
    port: int
    instance_ports: tuple[int, ...]
    upstream_keepalive: int = 0
    binary: str = NGINX
    instance_listen: str = HOST_DEFAULTS["instance_listen"]
    credentials_limit: bool = True  # production's per-address limit on login and registration
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def layout(self) -> Layout:
        return Layout(str(self.root))

    def start(self, timeout: float = 20.0) -> None:
        layout = self.layout
        host = bench_host(layout.root, self.port, self.instance_ports, self.instance_listen)
        for folder in front_dirs(layout):
            Path(folder).mkdir(parents=True, exist_ok=True)
        for path, text in front_files(layout, host, self.upstream_keepalive, self.credentials_limit).items():
            Path(path).write_text(text)
        if host.instance_listen == "unix":  # the upstream names the slots: point them as a switch does
            Path(layout.run).mkdir(parents=True, exist_ok=True)
            subprocess.run(["sh", "-c", point_slots_command(host, host.instance_ports)], check=True, timeout=10)
        error_log = Path(layout.logs) / "nginx-error.log"
        self.process = subprocess.Popen(
            nginx_argv(layout, self.binary), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = error_log.read_text() if error_log.exists() else ""
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {log[-2000:]}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # poll interval, not synchronisation: the loop checks the condition
        raise RuntimeError(f"nginx at {self.url} never answered /health/ready; see {error_log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: nginx's fast shutdown, its workers exit with the master
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

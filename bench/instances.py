"""The measured service: its instances started as production starts them (argv, environment,
sockets), nginx in front of them, and their orderly stop."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.front import NginxFront, bench_host
from devtools.local_postgres import LocalPostgres, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def server_env(database_url: str, log_file: Path) -> dict[str, str]:
    """What each instance gets on top of our environment.

    Mirrors deploy/templates/supervisor-program.conf.tmpl (JSON lines on stdout and in LOG_FILE,
    unbuffered), with bench-only changes: no .env file, a throwaway signing key, no verification job
    (its background work would vary between runs), and login throttling out of the way of the flood.
    """
    return {
        "DATABASE_URL": database_url,
        "OAUTH_HASH_KEY": "bench-signing-key-" + "x" * 32,
        "LOG_FORMAT": "json",
        "LOG_FILE": str(log_file),
        "PYTHONUNBUFFERED": "1",
        "ENV_FILE": "/dev/null",
        "SANIC_REAL_IP_HEADER": "x-real-ip",
        "PURCHASE_JOB_ENABLED": "false",
        "LOGIN_MAX_FAILURES": "1000000",
    }


def server_argv(port: int, socket: str = "") -> list[str]:
    """One instance of the service, as supervisor starts it in production: on its Unix socket
    (deploy.commands.instance_listen_args), or on loopback TCP when `socket` is empty."""
    listen = ["--unix", socket] if socket else ["--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "server", *listen]


def ready(port: int, socket: str) -> bool:
    """Whether the instance answers GET /health/ready with 200, through its socket or its port."""
    try:
        if socket:
            with httpx.Client(transport=httpx.HTTPTransport(uds=socket)) as client:
                return client.get("http://localhost/health/ready", timeout=2).status_code == 200
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_servers(
    database_url: str,
    instances: int,
    log_dir: Path,
    argv: Callable[[int, str], list[str]] = server_argv,
    env: Callable[[str, Path], dict[str, str]] = server_env,
    socket_for: Callable[[int], str] | None = None,
) -> list[tuple[subprocess.Popen, int]]:
    """Start `instances` single-process servers as production does; returns once each is ready.

    `argv(port, socket)` and `env(database_url, log_file)` default to the service; another app can
    pass its own. `socket_for(port)` is the Unix socket of each instance (None:
    loopback TCP on `port`). Each must answer GET /health/ready with 200 once ready."""
    servers = []
    for index in range(instances):
        port = free_port()
        output = (log_dir / f"server-{index}.out").open("wb")
        process_env = {**os.environ, **env(database_url, log_dir / f"app-{port}.log")}
        socket = socket_for(port) if socket_for else ""
        process = subprocess.Popen(
            argv(port, socket), cwd=PROJECT_ROOT, env=process_env, stdout=output, stderr=subprocess.STDOUT
        )
        servers.append((process, port))
    for process, port in servers:
        socket = socket_for(port) if socket_for else ""
        url = socket or f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ready(port, socket):
                break
            if process.poll() is not None:
                raise RuntimeError(f"server exited early; see {log_dir}")
            time.sleep(0.1)  # poll interval; the loop waits on readiness itself
        else:
            raise RuntimeError(f"server at {url} never became ready; see {log_dir}")
    return servers


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tear_down_servers(servers: list[tuple[subprocess.Popen, int]]) -> None:
    """Stop the instances, all at once, then wait for each."""
    for process, _ in servers:
        if process.poll() is None:
            process.terminate()
    for process, _ in servers:
        stop_process(process)


def instance_transport(args: argparse.Namespace) -> str:
    """ "unix" or "tcp": wrk cannot speak to a Unix socket, so --direct is TCP."""
    return "tcp" if args.direct else args.instances_over


def instance_sockets(workdir: Path, transport: str) -> Callable[[int], str] | None:
    """Where each instance listens when `transport` is "unix": production's path for the slot
    (deploy.inventory.Host.instance_socket) under the bench's front root, which NginxFront renders."""
    if transport != "unix":
        return None
    (workdir / "front" / "run").mkdir(parents=True, exist_ok=True)
    return lambda port: bench_host(str(workdir / "front"), 0, (port,)).instance_socket(port)


def start_front(
    servers: list[tuple[subprocess.Popen, int]], args: argparse.Namespace, workdir: Path, nginx_binary: str
) -> tuple[str, NginxFront | None]:
    """The URL wrk drives: nginx over the instances (production's shape), or one instance with --direct."""
    if args.direct:
        return f"http://127.0.0.1:{servers[0][1]}", None
    front = NginxFront(
        workdir / "front",
        free_port(),
        tuple(port for _, port in servers),
        instance_listen=instance_transport(args),
        upstream_keepalive=args.upstream_keepalive,
        binary=nginx_binary,
        credentials_limit=False,  # wrk's one address stands for many clients (bench.front)
    )
    front.start()
    return front.url, front


def instance_database_url(cluster: LocalPostgres, database: str, over: str) -> str:
    """The DATABASE_URL the instances get: through the cluster's socket folder, or loopback TCP."""
    return cluster.socket_dsn(database) if over == "socket" else cluster.dsn(database)

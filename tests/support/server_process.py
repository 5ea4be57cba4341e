"""A real server process, started the way production starts one (`python -m server`)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devtools.local_postgres import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_log_dir: Path | None = None


def _new_log_path() -> Path:
    """A log file in a folder of this test process that goes when the process ends (a failing
    test has already shown the log's tail in its message)."""
    global _log_dir
    if _log_dir is None:
        _log_dir = Path(tempfile.mkdtemp(prefix="cnb-server-logs-"))
        atexit.register(shutil.rmtree, _log_dir, True)
    descriptor, path = tempfile.mkstemp(prefix="server-", suffix=".log", dir=_log_dir)
    os.close(descriptor)
    return Path(path)


class ServerProcess:
    def __init__(
        self,
        database_url: str,
        signing_key: str,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        unix: str = "",
    ) -> None:
        self.host = host
        self.unix = unix  # a Unix socket to listen on instead of host:port, as production does
        self.port = port or free_port(host)
        self.url = "http://localhost" if unix else f"http://{host}:{self.port}"
        self.log_path = _new_log_path()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "OAUTH_HASH_KEY": signing_key,
            "LOG_FORMAT": "json",
            "ENV_FILE": "/dev/null",
            "PURCHASE_JOB_ENABLED": "false",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True, timeout: float = 30.0) -> ServerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                *(["--unix", self.unix] if self.unix else ["--host", self.host, "--port", str(self.port)]),
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait_ready:
            self.wait_for("/health/ready", 200, timeout)
        return self

    def wait_for(self, path: str, status: int, timeout: float = 30.0) -> httpx.Response:
        """Poll `path` until it answers `status`; fail with the server's log tail otherwise."""
        deadline = time.monotonic() + timeout
        last: object = None
        with self.client() as http:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    response = http.get(self.url + path)
                    if response.status_code == status:
                        return response
                    last = response.status_code
                except httpx.HTTPError as error:
                    last = error
                time.sleep(0.05)
        raise AssertionError(f"{path} never answered {status} (last: {last}):\n{self.log_tail()}")

    def client(self) -> httpx.Client:
        """An HTTP client that reaches this server, through its Unix socket when it has one."""
        transport = httpx.HTTPTransport(uds=self.unix) if self.unix else None
        return httpx.Client(timeout=2.0, transport=transport)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log_lines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_lines()[-lines:])

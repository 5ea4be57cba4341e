"""An S3-compatible endpoint on loopback (moto in server mode), for the tests and the sandbox.

boto3 talks to it over real HTTP with an endpoint URL, exactly as it talks to DigitalOcean Spaces
or MinIO. moto keeps every object in memory: keep what you store in it small, and know that a
stopped server forgets its buckets.

Two ways to use it:
- tests: `with LocalS3() as s3:` (the server lives as long as the block);
- the sandbox: `LocalS3(state_dir=...)` remembers its port and pid in that folder, so a later
  process (`invoke sandbox down`) can find and stop the server that `sandbox up` left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.local_postgres import free_port

ACCESS_KEY_ID = "local-access-key"
SECRET_ACCESS_KEY = "local-secret-key"
REGION = "us-east-1"


class LocalS3Error(RuntimeError):
    """moto could not be started or did not answer."""


@dataclass
class LocalS3:
    """`moto.server` on host:port. `env` adds variables to moto's environment (e.g. S3_UPLOAD_PART_MIN_SIZE)."""

    host: str = "127.0.0.1"
    port: int = 0
    log_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        self._process: subprocess.Popen | None = None
        if self.state_dir is not None:
            self.state_dir = Path(self.state_dir)
            if not self.port and self._port_file.exists():
                self.port = int(self._port_file.read_text())
            if self.log_file is None:
                self.log_file = self.state_dir / "moto.log"
        if not self.port:
            self.port = free_port(self.host)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def _port_file(self) -> Path:
        return Path(self.state_dir or ".") / "moto.port"

    @property
    def _pid_file(self) -> Path:
        return Path(self.state_dir or ".") / "moto.pid"

    def settings(self, bucket: str) -> dict[str, str]:
        """The S3_* variables a client of this endpoint needs."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_BUCKET": bucket,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def start(self, timeout: float = 30.0) -> LocalS3:
        if self.is_running() or (self._remembered_pid() and self.answers()):
            return self
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                # Its own session: Ctrl-C in the shell that started the sandbox must not kill it.
                start_new_session=self.state_dir is not None,
            )
        finally:
            if not isinstance(log, int):
                log.close()
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._port_file.write_text(str(self.port))
            self._pid_file.write_text(str(self._process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalS3Error(f"moto server exited with status {self._process.returncode} on {self.endpoint_url}")
            if self.answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise LocalS3Error(f"moto server did not answer on {self.endpoint_url} within {timeout:.0f}s")

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=1) as response:
                return response.status < 500
        except urllib.error.HTTPError as error:
            return error.code < 500
        except OSError:
            return False

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _remembered_pid(self) -> int | None:
        if self.state_dir is None or not self._pid_file.exists():
            return None
        pid = int(self._pid_file.read_text())
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return None if state == "Z" else pid  # a zombie has exited already

    def stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
            self._process = None
        else:
            pid = self._remembered_pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and self._remembered_pid():
                    time.sleep(0.05)
        if self.state_dir is not None:
            self._pid_file.unlink(missing_ok=True)

    def client(self):
        """A boto3 S3 client for this endpoint (tests use it to look inside the bucket)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def create_bucket(self, name: str) -> None:
        """Create the bucket unless it exists (idempotent, for `sandbox up` run twice)."""
        client = self.client()
        try:
            client.head_bucket(Bucket=name)
        except Exception:  # noqa: BLE001 - any "not there" answer means create it
            client.create_bucket(Bucket=name)

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""An S3-compatible endpoint on loopback (moto in server mode), for the tests and the sandbox.

boto3 talks to it over real HTTP with an endpoint URL, exactly as it talks to DigitalOcean Spaces
or MinIO. moto keeps every object in memory: keep what you store in it small.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local_postgres import free_port

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

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        self._process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def settings(self, bucket: str) -> dict[str, str]:
        """The S3_* variables a client of this endpoint needs."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_BUCKET": bucket,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def start(self, timeout: float = 30.0) -> "LocalS3":
        if self.is_running():
            return self
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
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

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def client(self):
        """A boto3 S3 client for this endpoint (tests use it to look inside the bucket)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def __enter__(self) -> "LocalS3":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""`clicknback-ops archive-logs` as a real process against a real S3 endpoint (moto over HTTP).

The sandbox flow (test_operations_flow.py) covers the operator's path over SSH; this covers the
edge cases quickly: a name collision is never overwritten, an interrupted compression is redone,
the JSON summary, and a bad host label is a configuration error.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from deploy.local_s3 import LocalS3

pytestmark = pytest.mark.e2e
BUCKET = "cnb-archive-cli"
PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = LocalS3(log_file=tmp_path_factory.mktemp("moto") / "moto.log").start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def host(tmp_path, s3):
    """A deploy root with shared/.env (S3 settings only) and an empty shared/logs."""
    logs = tmp_path / "shared" / "logs"
    logs.mkdir(parents=True)
    env_file = tmp_path / "shared" / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in s3.settings(BUCKET).items()))
    return tmp_path


def archive(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENV_FILE": str(root / "shared" / ".env")}
    return subprocess.run([sys.executable, "-m", "deploy.ops.cli", "archive-logs", *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=120)


def client(s3):
    settings = s3.settings(BUCKET)
    return boto3.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=settings["S3_ACCESS_KEY_ID"],
                        aws_secret_access_key=settings["S3_SECRET_ACCESS_KEY"])


def rotated(days_ago: float, port: int = 8001) -> str:
    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return f"app-{port}.{when:%Y-%m-%d_%H-%M-%S_%f}.log"


def test_a_name_collision_with_other_content_is_refused_and_kept(host, s3):
    name = rotated(10)
    (host / "shared" / "logs" / name).write_text('{"mine": true}\n')
    key = f"logs/collide/{name}.gz"
    client(s3).put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(b'{"theirs": true}\n'),
                          Metadata={"sha256": "0" * 64})
    result = archive(host, "--host-label", "collide", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert f"{name}.gz" in summary["failed"] and "not overwriting" in summary["failed"][f"{name}.gz"]
    assert (host / "shared" / "logs" / f"{name}.gz").exists()
    assert gzip.decompress(client(s3).get_object(Bucket=BUCKET, Key=key)["Body"].read()) == b'{"theirs": true}\n'


def test_an_interrupted_compression_is_redone_and_uploaded_once(host, s3):
    logs = host / "shared" / "logs"
    name = rotated(1, port=8002)
    content = "".join(json.dumps({"n": i}) + "\n" for i in range(50))
    (logs / name).write_text(content)
    (logs / f"{name}.gz").write_bytes(b"\x1f\x8b truncated")  # a crash between the rename and the unlink
    (logs / f"{name}.gz.partial").write_bytes(b"half")
    first = archive(host, "--host-label", "redo", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["compressed"] == [name] and summary["uploaded"] == [f"{name}.gz"]
    assert summary["kept_locally"] == [f"{name}.gz"] and not (logs / name).exists()
    stored = client(s3).get_object(Bucket=BUCKET, Key=f"logs/redo/{name}.gz")["Body"].read()
    assert gzip.decompress(stored).decode() == content
    second = json.loads(archive(host, "--host-label", "redo", "--json").stdout.strip().splitlines()[-1])
    assert second["uploaded"] == [] and second["already_archived"] == [f"{name}.gz"]


def test_a_bad_host_label_is_a_configuration_error(host):
    result = archive(host, "--host-label", "../escape")
    assert result.returncode == 2 and "--host-label" in result.stderr

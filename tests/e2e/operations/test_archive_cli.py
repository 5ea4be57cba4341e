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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from devtools.local_s3 import LocalS3
from tests.support.waiting import wait_for

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
    return subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", "archive-logs", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def client(s3):
    settings = s3.settings(BUCKET)
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=settings["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=settings["S3_SECRET_ACCESS_KEY"],
    )


def rotated(days_ago: float, port: int = 8001) -> str:
    when = datetime.now(UTC) - timedelta(days=days_ago)
    return f"app-{port}.{when:%Y-%m-%d_%H-%M-%S_%f}.log"


def test_a_name_collision_with_other_content_is_refused_and_kept(host, s3):
    name = rotated(10)
    (host / "shared" / "logs" / name).write_text('{"mine": true}\n')
    key = f"logs/collide/{name}.gz"
    client(s3).put_object(
        Bucket=BUCKET, Key=key, Body=gzip.compress(b'{"theirs": true}\n'), Metadata={"sha256": "0" * 64}
    )
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


@pytest.fixture
def nginx_root(s3):
    """A deploy root with the project's own nginx in front of no instance. Under /tmp, not pytest's
    0700 folder: run as root (here), nginx's workers are `nobody` and must reach their log files."""
    import shutil
    import tempfile
    import urllib.error
    import urllib.request

    from deploy import commands as cmd
    from deploy.commands import Layout
    from deploy.inventory import parse_inventory
    from devtools.local_postgres import free_port

    root = Path(tempfile.mkdtemp(prefix="cnb-archive-nginx-"))
    root.chmod(0o755)
    (root / "shared" / "logs").mkdir(parents=True)
    (root / "shared" / ".env").write_text("".join(f"{k}={v}\n" for k, v in s3.settings(BUCKET).items()))
    port = free_port()
    inventory = parse_inventory(
        f'[environments.t]\n[[environments.t.hosts]]\nname = "t"\naddress = "127.0.0.1"\n'
        f'deploy_root = "{root}"\nnginx_port = {port}\ninstance_listen = "tcp"\n'
        f"instance_ports = [{free_port()}]\n"
    )
    target, layout = inventory.environment("t").hosts[0], Layout(str(root))
    (root / "nginx" / "tmp").mkdir(parents=True)
    (root / "nginx" / "nginx.conf").write_text(cmd.nginx_conf(layout, target))
    (root / "nginx" / "upstream.conf").write_text(cmd.nginx_upstream_conf(target, target.instance_ports))
    subprocess.run(["sh", "-c", cmd.nginx_reload_command(layout)], check=True, timeout=30)

    def get(path: str) -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
        except urllib.error.HTTPError as error:
            return error.code

    yield root, get
    os.kill(int((root / "nginx" / "nginx.pid").read_text()), 15)
    wait_for(lambda: not (root / "nginx" / "nginx.pid").exists(), 10, "nginx to exit")
    shutil.rmtree(root, ignore_errors=True)


def test_nginx_cron_and_switch_logs_are_rotated_and_archived_without_losing_a_line(nginx_root, s3):
    root, nginx = nginx_root
    logs = root / "shared" / "logs"
    assert nginx("/before-rotation") == 503  # no instance: nginx answers itself, and logs it
    # nginx flushes its access-log buffer every second.
    wait_for(lambda: "/before-rotation" in (logs / "nginx-access.log").read_text(), 10, "the request in the log")
    (logs / "cron.log").write_text("archive-logs: yesterday's run\n")
    (logs / "switch.log").write_text("2026-11-27T00:00:00Z stopped app-8001 (switch) in 1.02s\n")
    (logs / "ops-errors.log").write_text("")  # empty: nothing to rotate
    first = archive(root, "--host-label", "plain", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    rotated = {name.split(".", 1)[0]: name for name in summary["rotated"]}
    assert sorted(rotated) == ["cron", "nginx-access", "nginx-error", "switch"]
    # cron.log and switch.log are copies: archived at once. nginx's workers may still be writing
    # into the renamed files for a moment, so those wait for the next run.
    assert sorted(summary["uploaded"]) == sorted([f"{rotated['cron']}.gz", f"{rotated['switch']}.gz"])
    assert (logs / rotated["nginx-access"]).exists()
    assert (logs / "cron.log").read_text() == "" and (logs / "switch.log").read_text() == ""
    assert (logs / "ops-errors.log").exists() and (logs / "nginx-access.log").exists()

    assert nginx("/after-rotation") == 503
    wait_for(lambda: "/after-rotation" in (logs / "nginx-access.log").read_text(), 10, "the request in the new log")
    second = archive(root, "--host-label", "plain", "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert sorted(again["uploaded"]) == sorted([f"{rotated['nginx-access']}.gz", f"{rotated['nginx-error']}.gz"])
    newer = next(name for name in again["rotated"] if name.startswith("nginx-access."))
    assert "/after-rotation" in (logs / newer).read_text()  # the next run archives it

    def archived(name: str) -> str:
        key = f"logs/plain/{name}.gz"
        return gzip.decompress(client(s3).get_object(Bucket=BUCKET, Key=key)["Body"].read()).decode()

    # The line before the rotation is in the renamed file, the one after it in the new one.
    access = archived(rotated["nginx-access"])
    assert '"GET /before-rotation HTTP/1.1" 503' in access and "/after-rotation" not in access
    assert "connect() failed" in archived(rotated["nginx-error"])
    assert archived(rotated["cron"]) == "archive-logs: yesterday's run\n"
    assert "stopped app-8001" in archived(rotated["switch"])

"""`invoke sandbox up|down`: the local VPS pair a newcomer starts, as a real subprocess."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from pathlib import Path

import pytest

from deploy.inventory import load_inventory
from deploy.ssh import Remote

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PROJECT = Path(__file__).resolve().parents[3]


def task(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=PROJECT, capture_output=True, text=True, timeout=180
    )


def test_sandbox_up_gives_ssh_hosts_postgres_and_s3_and_down_removes_them():
    base = Path(tempfile.mkdtemp(prefix="cnb-sandbox-test-", dir="/var/tmp")) / "sandbox"
    try:
        up = task("sandbox", "up", "--base-dir", str(base))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "export CLICKNBACK_INVENTORY=" in up.stdout
        inventory = load_inventory(str(base / "inventory.toml"))
        environment = inventory.environment("sandbox")
        assert [h.address for h in environment.hosts] == ["127.0.0.2", "127.0.0.3"]
        for host in environment.hosts:
            remote = Remote(host)
            try:
                assert remote.query("id -un").stdout.strip() == host.ssh_user
                assert remote.query(f"test -w {host.deploy_root}", check=False).ok
            finally:
                remote.close()
        env_file = base / "app.env"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert settings["DATABASE_URL"].startswith("postgres://") and len(settings["OAUTH_HASH_KEY"]) >= 32
        with urllib.request.urlopen(settings["S3_ENDPOINT_URL"] + "/moto-api/", timeout=5) as response:
            assert response.status == 200
        # S3 lives in the env file only; the inventory has no s3 table (it would be refused).
        assert "s3" not in tomllib.loads((base / "inventory.toml").read_text())["environments"]["sandbox"]
        postgres_port = int(settings["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
        socket.create_connection(("127.0.0.1", postgres_port), timeout=2).close()
        nginx_port = environment.hosts[0].nginx_port
        assert f":{nginx_port}/health/ready" in up.stdout  # a port free on both hosts, not a fixed one
        assert task("sandbox", "up", "--base-dir", str(base)).returncode == 0  # idempotent
        again = load_inventory(str(base / "inventory.toml")).environment("sandbox").hosts[0]
        assert again.nginx_port == nginx_port  # the hosts' nginx configs name it: kept across `up`s
    finally:
        down = task("sandbox", "down", "--base-dir", str(base))
        left_behind = base.exists()  # what `sandbox down` failed to delete
        shutil.rmtree(base.parent, ignore_errors=True)  # the mkdtemp folder, also when a check failed
    assert down.returncode == 0, down.stdout + down.stderr
    assert not left_behind
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", postgres_port), timeout=2).close()

"""A host that cannot be reached, beside the sandbox's two real sshd hosts.

The reports (releases, health) still show the hosts that answer and mark the other one; a deploy
stops before touching anything; a refused login is one line. The "down" host is a loopback port
nobody listens on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy.session import current_release
from tests.support.ports import closed_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def with_down_host(sandbox, tmp_path) -> tuple[str, int]:
    port = closed_port()
    text = sandbox.inventory_path.read_text()
    down = (
        f'\n[[environments.sandbox.hosts]]\nname = "down"\naddress = "127.0.0.1"\nssh_port = {port}\n'
        f'deploy_root = "{tmp_path}/down"\n'
    )
    marker = "\n[environments.solo]"
    assert marker in text, "the e2e inventory layout changed"
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(text.replace(marker, down + marker, 1))
    return str(inventory), port


def test_reports_show_the_reachable_hosts_and_mark_the_unreachable_one(run_task, hosts, with_down_host):
    inventory, port = with_down_host
    for task in ("releases", "health"):
        result = run_task(task, "--inventory", inventory, check=False)
        assert result.returncode == 1 and "Traceback" not in result.output, result.output
        for host in hosts:
            assert f"== {host.name}" in result.output, (task, result.output)
        assert (
            f"== down (127.0.0.1): UNREACHABLE: SSH to 127.0.0.1 port {port} as "
            f"{hosts[0].ssh_user} failed: connection refused"
        ) in result.output, result.output
        assert result.output.rstrip().splitlines()[-1].startswith("ERROR: "), result.output


def test_a_deploy_with_an_unreachable_host_stops_before_changing_anything(run_task, hosts, remotes, with_down_host):
    inventory, port = with_down_host
    before = [current_release(remote) for remote in remotes]
    result = run_task("deploy", "--tag", "vC", "--inventory", inventory, check=False)
    assert result.returncode == 1 and "Traceback" not in result.output, result.output
    assert f"ERROR: [down] SSH to 127.0.0.1 port {port}" in result.output
    assert "uploaded" not in result.output and "lock" not in result.output.lower().split("error")[0]
    assert [current_release(remote) for remote in remotes] == before
    lock = run_task("lock", check=True)  # the real hosts' locks were never taken
    assert lock.output.count("free") == len(hosts), lock.output


def test_a_refused_login_is_one_line(run_task, sandbox, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(sandbox.inventory_path.read_text().replace(str(sandbox.sshd.identity_file), str(key)))
    result = run_task("releases", "--inventory", str(inventory), check=False)
    assert result.returncode == 1 and "Traceback" not in result.output, result.output
    assert "failed: authentication failed" in result.output and str(Path(key).read_text()) not in result.output

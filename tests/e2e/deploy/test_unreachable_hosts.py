"""A host that cannot be reached, beside the sandbox's two real sshd hosts.

The reports (releases, health) still show the hosts that answer and mark the other one; a deploy
stops before touching anything; a refused login is one line. The "down" host is a loopback port
nobody listens on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy import commands as cmd
from deploy.session import current_release, layout
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


# Every file a provision, a maintenance window or a log archive writes (configs, secrets, state,
# this deploy root's crontab block), with its size, checksum and mtime in ns: an idempotent rewrite
# keeps the content but not the mtime. Logs, sockets, pid files and the releases' trees are left
# out (they change or are not ours to change here), and so are the crontab's other blocks: the
# deploy user's crontab is shared with the sandboxes of concurrent test sessions.
SNAPSHOT = (
    "cd {root} && find . -type f ! -path './shared/logs/*' ! -path './run/*' ! -path './nginx/tmp/*' "
    "! -path './releases/*' ! -path './venvs/*' ! -name '*.pid' ! -name '*.sock' -print0 | sort -z "
    '| xargs -0 -r sh -c \'for f; do printf "%s %s\\n" "$(stat -c "%n %s %.9Y" "$f")" '
    '"$(sha256sum < "$f")"; done\' sh; crontab -l 2>/dev/null | {block}'
)


def host_files(remote) -> str:
    marker = cmd.crontab_marker(layout(remote))
    block = (
        f"awk -v begin={cmd.q('# BEGIN ' + marker)} -v end={cmd.q('# END ' + marker)} "
        "'$0==begin{keep=1} keep{print} $0==end{keep=0}'"
    )
    return remote.query(SNAPSHOT.format(root=remote.host.deploy_root, block=block)).stdout


@pytest.mark.parametrize(
    "task_args",
    [("provision",), ("provision", "--env-file", "ENV_FILE"), ("maintenance",), ("archive-logs",)],
    ids=["provision", "provision-rotating-secrets", "maintenance", "archive-logs"],
)
def test_a_change_with_an_unreachable_host_changes_no_host(run_task, remotes, with_down_host, tmp_path, task_args):
    inventory, port = with_down_host
    run_task("provision")  # the reachable hosts as an operator left them: provisioned
    env_file = tmp_path / "rotated.env"
    env_file.write_text("SECRET_KEY=rotated-on-no-host-because-one-is-down\n")
    args = [str(env_file) if arg == "ENV_FILE" else arg for arg in task_args]
    before = [host_files(remote) for remote in remotes]
    assert all("supervisord.conf" in files and "# END clicknback" in files for files in before), before
    result = run_task(*args, "--inventory", inventory, check=False)
    assert result.returncode == 1 and "Traceback" not in result.output, result.output
    assert f"ERROR: [down] SSH to 127.0.0.1 port {port}" in result.output, result.output
    assert "provisioned" not in result.output and "installed" not in result.output, result.output
    after = [host_files(remote) for remote in remotes]
    changed = [sorted(set(a.splitlines()) ^ set(b.splitlines())) for a, b in zip(before, after)]
    assert not any(changed), changed

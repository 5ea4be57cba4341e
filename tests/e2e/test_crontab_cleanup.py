"""A sandbox's teardown against the deploy user's real crontab, which every sandbox and test run shares.

Blocks are installed the way `invoke provision` installs them (the same command, under its lock);
the teardown must drop this sandbox's blocks and the named test line, and keep everyone else's.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import uuid

import pytest

from deploy import commands as cmd
from devtools.local_sshd import deploy_user_name, ensure_deploy_user, is_under, remove_crontab_entries

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("crontab") is None, reason="no crontab here")]


def as_user(user: str, command: str) -> str:
    argv = ["su", "-", user, "-c", command] if user != getpass.getuser() else ["bash", "-c", command]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def install_block(user: str, root: str) -> None:
    block = f"# BEGIN clicknback {root}\n@reboot true {root}\n# END clicknback {root}\n"
    as_user(user, cmd.crontab_install_command(f"clicknback {root}", block))


def crontab(user: str) -> str:
    return as_user(user, "crontab -l 2>/dev/null || true")


def test_teardown_removes_its_own_blocks_and_test_line_and_keeps_the_rest(tmp_path):
    user = deploy_user_name()
    ensure_deploy_user(user)
    run = uuid.uuid4().hex[:8]
    roots = tmp_path / "sandbox" / "roots"
    mine = [f"{roots}/127.0.0.2", f"{roots}/127.0.0.3"]
    neighbour = f"{tmp_path}/sandbox/roots-neighbour-{run}/127.0.0.2"  # a prefix of ours, not ours
    line = f"# e2e crontab cleanup {run}"
    try:
        for root in [*mine, neighbour]:
            install_block(user, root)
        as_user(user, f"(crontab -l 2>/dev/null; echo {cmd.q(line)}) | crontab -")
        before = crontab(user)
        assert all(f"# BEGIN clicknback {root}\n" in before for root in [*mine, neighbour]) and line in before

        assert remove_crontab_entries(user, lambda root: is_under(root, roots), [line])

        after = crontab(user)
        assert not any(root in after for root in mine)
        assert line not in after
        assert f"# BEGIN clicknback {neighbour}\n@reboot true {neighbour}\n# END clicknback {neighbour}\n" in after
        # Nothing left to remove: says so, changes nothing.
        assert not remove_crontab_entries(user, lambda root: is_under(root, roots), [line])
        assert crontab(user) == after
    finally:
        remove_crontab_entries(user, lambda root: is_under(root, tmp_path), [line])
    assert str(tmp_path) not in crontab(user)
    if os.geteuid() == 0 and user != getpass.getuser():
        # The provision lock stays usable by the deploy user after root touched it.
        assert as_user(user, 'exec 9>>"$HOME/.clicknback-crontab.lock" && flock -n 9 && echo locked') == "locked\n"

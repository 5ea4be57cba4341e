"""E2E fixtures for the deploy toolkit: two sshd hosts, a throwaway git repo with tags, a task runner.

The repo is a copy of this working tree's tracked files with four tags:
  vA       the tree as it is
  vB       vA plus a trivial migration (schema change, so rolling back to vA needs --downgrade)
  vBroken  vB with readiness that never passes (the app runs and would serve, but is never ready)
  vC       vB plus a code-only change (the fast path: no migration, same requirements.lock)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.inventory import load_inventory
from deploy.ssh import Remote
from devtools.sandbox import ENVIRONMENT, Sandbox
from tests.support.gitrepo import copy_working_tree, git
from tests.support.sshd import seed_shared_venv, started_sandbox

BROKEN_PROBE_FROM = "self.expected_head = code_head()"
BROKEN_PROBE_TO = 'self.expected_head = "vBroken-is-never-ready"'

pytestmark = pytest.mark.e2e
# test_deploy_flow.py puts this "user's own" line in the deploy user's crontab (our blocks must keep
# it); the sandbox's teardown removes exactly this line with the sandbox's blocks.
# A line of the deploy user's own that provision must keep. Unique to this test session, so the
# teardown that removes it never removes the line of a concurrent session.
FOREIGN_CRONTAB_LINE = f"# a line of the user's own, outside our blocks (test session {os.getpid()})"


def _next_migration(repo: Path) -> tuple[Path, int]:
    models = repo / "migrations" / "models"
    numbers = [int(p.name.split("_", 1)[0]) for p in models.glob("[0-9]*_*.py")]
    number = max(numbers) + 1
    return models / f"{number}_20991231000000_e2e_marker.py", number


MIGRATION = """from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return "CREATE TABLE e2e_marker (id SERIAL PRIMARY KEY, note TEXT NOT NULL DEFAULT '');"


async def downgrade(db: BaseDBAsyncClient) -> str:
    return "DROP TABLE e2e_marker;"
"""


@dataclass
class Repo:
    path: Path
    migration_number_b: int

    def commit_of(self, tag: str) -> str:
        return git(self.path, "rev-parse", f"{tag}^{{commit}}")


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Repo:
    path = tmp_path_factory.mktemp("repo")
    copy_working_tree(path)
    if os.environ.get("CLICKNBACK_E2E_LOCK_FILE"):  # try a candidate lock file without committing it
        shutil.copy(os.environ["CLICKNBACK_E2E_LOCK_FILE"], path / "requirements.lock")
    if not (path / "requirements.lock").exists():
        pytest.skip("requirements.lock is not in the tree yet: deploys install from it")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "vA")
    git(path, "tag", "vA")
    migration, number = _next_migration(path)
    migration.write_text(MIGRATION)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "vB: a trivial migration")
    git(path, "tag", "vB")
    probe = path / "server" / "health" / "probe.py"
    original = probe.read_text()
    assert BROKEN_PROBE_FROM in original, "the readiness probe changed: update the vBroken patch"
    probe.write_text(original.replace(BROKEN_PROBE_FROM, BROKEN_PROBE_TO))
    git(path, "commit", "-q", "-am", "vBroken: readiness never passes")
    git(path, "tag", "vBroken")
    git(path, "checkout", "-q", "vB")
    (path / "server" / "e2e_code_only_change.py").write_text('"""A code-only change (vC)."""\n')
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "vC: code only")
    git(path, "tag", "vC")
    return Repo(path, number)


@pytest.fixture(scope="session")
def sandbox(repo: Repo) -> Sandbox:
    # `solo` is the first host alone, for single-host timings.
    solo_host = "127.0.0.2"
    with started_sandbox(crontab_lines=(FOREIGN_CRONTAB_LINE,)) as box:
        solo = (
            f'\n[environments.solo]\n[[environments.solo.hosts]]\nname = "host-2"\n'
            f'address = "{solo_host}"\nbind_address = "{solo_host}"\n'
            f'deploy_root = "{box.deploy_root(solo_host)}"\n'
        )
        box.inventory_path.write_text(box.inventory_text() + solo)
        seed_shared_venv(box, (repo.path / "requirements.lock").read_bytes())
        yield box


@dataclass
class TaskResult:
    returncode: int
    output: str
    seconds: float


@pytest.fixture(scope="session")
def run_task(repo: Repo, sandbox: Sandbox):
    """Run `invoke <task>` in a subprocess from the throwaway repo (its tasks.py), as an operator would."""

    def run(*args: str, check: bool = True, timeout: float = 300) -> TaskResult:
        env = {**os.environ, "CLICKNBACK_INVENTORY": str(sandbox.inventory_path), "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        seconds = time.monotonic() - started
        output = result.stdout + result.stderr
        if check and result.returncode != 0:
            raise AssertionError(f"task {' '.join(args)} failed ({result.returncode}):\n{output}")
        return TaskResult(result.returncode, output, seconds)

    return run


@pytest.fixture(scope="session")
def hosts(sandbox: Sandbox):
    return load_inventory(str(sandbox.inventory_path)).environment(ENVIRONMENT).hosts


@pytest.fixture(scope="session")
def remotes(hosts):
    connections = [Remote(host) for host in hosts]
    yield connections
    for remote in connections:
        remote.close()

"""After `invoke failover`, with the inventory untouched (host-2 still listed first), the tasks that
need the database host find the promoted one in the ledger (deploy/primary.py): a dump backup, a
point-in-time restore's plan, the deploy's one migrate and `stats`' database figures run on host-3;
`--host` still overrides."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devtools.local_sshd import ports_free_on_all
from devtools.sandbox import APP_ROLE, DATABASE
from tests.e2e.deploy.conftest import Repo, repo  # noqa: F401 (fixture)
from tests.support.sshd import seed_shared_venv, started_sandbox

from .conftest import HOSTS, Clusters

pytestmark = pytest.mark.e2e


@pytest.fixture
def failed_over(repo: Repo) -> Iterator[Clusters]:  # noqa: F811
    """vA on both hosts with an S3 endpoint, host-3 a standby of host-2, then `invoke failover`."""
    with started_sandbox(tuple(HOSTS.values()), with_s3=True, database_pair=True) as sandbox:
        box = Clusters(sandbox, sandbox.pair())
        seed_shared_venv(sandbox, (repo.path / "requirements.lock").read_bytes())
        box.invoke("provision", "--env-file", str(sandbox.env_file), cwd=repo.path)
        box.invoke("deploy", "--tag", "vA", cwd=repo.path, timeout=600)
        box.invoke("standby", "--host", "host-3", cwd=repo.path)
        _, output = box.invoke("failover", cwd=repo.path)
        assert "failover done: primary host-2 (fenced) -> host-3" in output, output
        yield box


def _lines_of(host: str, output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(rf"\[{host} \+[\d.]+s\] ", line)]


def test_the_tasks_find_the_promoted_primary_without_an_inventory_edit(
    failed_over: Clusters, repo: Repo, tmp_path
) -> None:  # noqa: F811
    box = failed_over
    inventory = box.sandbox.inventory_path.read_text()
    assert inventory.index('name = "host-2"') < inventory.index('name = "host-3"')  # host-2 still first

    _, backup = box.invoke("backup", cwd=repo.path, timeout=300)
    assert any("running ops CLI: backup" in line for line in _lines_of("host-3", backup)), backup
    assert not any("running ops CLI" in line for line in _lines_of("host-2", backup)), backup
    assert "[host-3] the database host (the last failover promoted it)" in backup, backup
    # --host still names the host: the dump runs where the operator says.
    _, listed = box.invoke("backups", "--host", "host-2", cwd=repo.path)
    assert any("running ops CLI: backups" in line for line in _lines_of("host-2", listed)), listed
    # The JSON listing stays one JSON object on stdout after a failover (the choice is said on stderr).
    assert len(json.loads(_stdout_of(box, repo, "backups", "--json"))["complete"]) == 1

    # host-2 unreachable: skipped and named; the ledger of host-3 still names it.
    closed_port = ports_free_on_all(("127.0.0.2",), 1)[0]
    dead = tmp_path / "inventory.toml"
    dead.write_text(inventory.replace('name = "host-2"\n', f'name = "host-2"\nssh_port = {closed_port}\n', 1))
    _, again = box.invoke("backup", cwd=repo.path, inventory=dead, timeout=300)
    assert "[host-2] skipped while looking for the database host" in again, again
    assert any("running ops CLI: backup" in line for line in _lines_of("host-3", again)), again

    _, plan = box.invoke("restore", "--to-latest", "--confirm-live", "--dry-run", cwd=repo.path)
    assert "would 2. [host-3] archive the current WAL segment" in plan, plan
    assert "would 4. [host-3] stop the live cluster" in plan, plan

    _, planned = box.invoke("deploy", "--tag", "vB", "--dry-run", cwd=repo.path, timeout=300)
    assert any("would migrate the database (once)" in line for line in _lines_of("host-3", planned)), planned
    assert not any("migrate the database" in line for line in _lines_of("host-2", planned)), planned
    box.invoke("deploy", "--tag", "vB", cwd=repo.path, timeout=600)
    assert _marker_in_app_database(box) == "t"  # vB's migration reached the new primary


def _marker_in_app_database(box: Clusters) -> str:
    """vB's migration table, looked up in the app's database on host-3 (pair.psql reads `postgres`)."""
    command = (
        f"{box.bindir}/psql -h {box.root}/host-3/run -p {box.port} -U {APP_ROLE} -d {DATABASE} -qAtX "
        "-c \"SELECT to_regclass('public.e2e_marker') IS NOT NULL\""
    )
    return box.pair.as_owner(command).stdout.strip()


def _stdout_of(box: Clusters, repo: Repo, *args: str) -> str:  # noqa: F811
    """An invoke task's stdout alone (Clusters.invoke joins stderr to it)."""
    env = {**os.environ, "CLICKNBACK_INVENTORY": str(box.sandbox.inventory_path), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=repo.path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout

"""`invoke drill --failover` on a sandbox whose two hosts hold the primary and its synchronous standby:
the app deployed on both, purchases recorded through nginx while the primary is SIGKILLed, the
failover repointing both hosts and restarting them through the deploy's gated switch; then the old
primary, started again, refuses writes."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devtools.sandbox import APP_ROLE, DATABASE, Sandbox
from server.seed import load_demo_seed
from tests.e2e.deploy.conftest import Repo, repo  # noqa: F401 (fixture)
from tests.support.sshd import seed_shared_venv, started_sandbox

from .conftest import HOSTS, Clusters, clusters_on

pytestmark = pytest.mark.e2e


def run(repo_: Repo, sandbox: Sandbox, *args: str, timeout: float = 600) -> str:
    env = {**os.environ, "CLICKNBACK_INVENTORY": str(sandbox.inventory_path), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=repo_.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"invoke {' '.join(args)} failed ({result.returncode}):\n{output}"
    return output


@pytest.fixture(params=[True, False], ids=["synchronous", "asynchronous"])
def deployed_pair(request, repo: Repo) -> Iterator[tuple[Repo, Clusters, bool]]:  # noqa: F811
    """vA on both hosts, its database on host-2's cluster (demo data), host-3 its standby."""
    with started_sandbox(tuple(HOSTS.values())) as sandbox, clusters_on(sandbox) as box:
        seed_shared_venv(sandbox, (repo.path / "requirements.lock").read_bytes())
        box.psql("host-2", f"CREATE ROLE {APP_ROLE} LOGIN CREATEDB")
        box.psql("host-2", f"CREATE DATABASE {DATABASE} OWNER {APP_ROLE}")
        url = f"postgres://{APP_ROLE}@{HOSTS['host-2']}:{box.port}/{DATABASE}"
        lines = [line for line in sandbox.env_file.read_text().splitlines() if not line.startswith("DATABASE_URL=")]
        sandbox.env_file.write_text("\n".join([f"DATABASE_URL={url}", *lines]) + "\n")
        run(repo, sandbox, "provision", "--env-file", str(sandbox.env_file))
        run(repo, sandbox, "deploy", "--tag", "vA")
        asyncio.run(load_demo_seed(url))
        run(repo, sandbox, "standby", "--host", "host-3", *(["--synchronous"] if request.param else []))
        yield repo, box, request.param


def test_drill_failover_kills_the_primary_under_ingestion_and_counts_lost_purchases(deployed_pair) -> None:
    repo_, box, synchronous = deployed_pair
    output = run(repo_, box.sandbox, "drill", "--failover", "--timeout", "120")
    print(output)
    figures = re.search(
        r"RTO (?P<rto>[\d.]+)s .*?; (?P<acked>\d+) purchases acknowledged, (?P<missing>\d+) missing after failover "
        r"\(RPO (?P<rpo>[\d.]+)s",
        output,
    )
    assert figures, output
    mode = "synchronous" if synchronous else "asynchronous"
    assert f"failover drill ({mode}): primary host-2 (fenced) -> host-3" in output
    assert int(figures["acked"]) >= 100 and float(figures["rto"]) <= 60.0  # the targets
    if synchronous:
        assert int(figures["missing"]) == 0 and float(figures["rpo"]) == 0.0
    else:
        assert float(figures["rpo"]) <= 60.0  # counted, whatever it is: streaming keeps it to a moment
    for address in HOSTS.values():
        env_file = box.sandbox.deploy_root(address) / "shared" / ".env"
        assert f"@{HOSTS['host-3']}:{box.port}/" in env_file.read_text()  # every app host repointed
    ledger = (box.sandbox.deploy_root(HOSTS["host-2"]) / "state" / "ledger.jsonl").read_text().splitlines()
    assert '"kind":"failover"' in ledger[-1] and "primary host-2 (fenced) -> host-3" in ledger[-1]

    # The old primary comes back: a read-only follower, whatever a client tries.
    box.start("host-2")
    assert box.psql("host-2", "SELECT pg_is_in_recovery()") == "t"
    with pytest.raises(AssertionError, match="read-only transaction"):
        box.psql("host-2", "INSERT INTO purchases_acked VALUES (-2)")

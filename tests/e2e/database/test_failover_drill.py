"""`invoke drill --failover` on a sandbox whose two hosts hold the primary and its synchronous standby:
the app deployed on both, purchases recorded through nginx while the primary is SIGKILLed, the
failover repointing both hosts and restarting them through the deploy's gated switch; then the old
primary, started again, refuses writes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from devtools.sandbox import APP_ROLE, DATABASE
from server.seed import load_demo_seed
from tests.e2e.deploy.conftest import Repo, repo  # noqa: F401 (fixture)
from tests.support.sshd import seed_shared_venv

from .conftest import HOSTS, Clusters, pair_sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[True, False], ids=["synchronous", "asynchronous"])
def deployed_pair(request, repo: Repo) -> Iterator[tuple[Clusters, bool]]:  # noqa: F811
    """vA on both hosts, its database on host-2's cluster (demo data), host-3 its standby."""
    for box in pair_sandbox():
        seed_shared_venv(box.sandbox, (repo.path / "requirements.lock").read_bytes())
        box.invoke("provision", "--env-file", str(box.sandbox.env_file), cwd=repo.path)
        box.invoke("deploy", "--tag", "vA", cwd=repo.path, timeout=600)
        asyncio.run(load_demo_seed(box.pair.url(APP_ROLE, DATABASE)))
        box.invoke("standby", "--host", "host-3", *(["--synchronous"] if request.param else []), cwd=repo.path)
        yield box, request.param


def test_drill_failover_kills_the_primary_under_ingestion_and_counts_lost_purchases(deployed_pair) -> None:
    box, synchronous = deployed_pair
    _, output = box.invoke("drill", "--failover", "--timeout", "120", timeout=600)
    print(output)
    figures = re.search(
        r"RTO (?P<rto>[\d.]+)s .*?; (?P<acked>\d+) purchases acknowledged, (?P<missing>\d+) missing after failover "
        r"\(RPO (?P<rpo>[\d.]+)s",
        output,
    )
    assert figures, output
    mode = "synchronous" if synchronous else "asynchronous"
    assert f"failover drill ({mode}): primary host-2 (fenced) -> host-3" in output
    # The target; never 0: a purchase sent before the kill and answered after it is not "writes back".
    assert int(figures["acked"]) >= 100 and 0.5 < float(figures["rto"]) <= 60.0
    if synchronous:
        assert int(figures["missing"]) == 0 and float(figures["rpo"]) == 0.0
    else:
        assert float(figures["rpo"]) <= 60.0  # counted, whatever it is: streaming keeps it to a moment

    def url(host: str) -> str:
        env_file = box.sandbox.deploy_root(HOSTS[host]) / "shared" / ".env"
        return next(line for line in env_file.read_text().splitlines() if line.startswith("DATABASE_URL="))

    # Every app host repointed: the new primary's own host through its socket, the other over TCP.
    assert url("host-3") == f"DATABASE_URL=postgres://clicknback@:{box.port}/clicknback?host={box.root}/host-3/run"
    assert url("host-2") == f"DATABASE_URL=postgres://clicknback@{HOSTS['host-3']}:{box.port}/clicknback"
    ledger = (box.sandbox.deploy_root(HOSTS["host-2"]) / "state" / "ledger.jsonl").read_text().splitlines()
    assert '"kind":"failover"' in ledger[-1] and "primary host-2 (fenced) -> host-3" in ledger[-1]

    # The old primary comes back: a read-only follower, whatever a client tries.
    box.start("host-2")
    assert box.psql("host-2", "SELECT pg_is_in_recovery()") == "t"
    with pytest.raises(AssertionError, match="read-only transaction"):
        box.psql("host-2", "CREATE TABLE written_on_the_old_primary (n int)")

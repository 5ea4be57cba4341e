"""Clients on persistent connections through every kind of switch: deploy, broken deploy, rollback,
rollback --downgrade and a deploy that migrates. Each operation runs under two loads at once, both
on authenticated routes (GET /api/v1/users/me, POST purchase ingestion with unique external_ids):
one keeping its connections open (one per thread and host), one opening a connection per request.
Neither may lose a request: no connection error, no unexpected status.

The tests build on each other in file order; the module fixture brings the sandbox to vB with vA
kept, whether it starts empty or after test_deploy_flow.py.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid

import pytest

from deploy.session import current_release, release_ids
from devtools.sandbox import APP_ROLE, DATABASE
from server.seed import ALICE, SHOPLY, load_demo_seed_sync
from tests.e2e.deploy.test_deploy_flow import nginx_urls, record_figure
from tests.support.load import Call, LoadGenerator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

THREADS = 4
PER_THREAD_RATE = 25.0


@pytest.fixture(scope="module")
def on_vb(run_task, sandbox, remotes):
    """vB live on both hosts with vA kept (the downgrade target), and the demo seed loaded."""
    if current_release(remotes[0]) is None:
        run_task("provision", "--env-file", str(sandbox.env_file))
    if not all(any(r.endswith("-vA") for r in release_ids(remote)) for remote in remotes):
        run_task("deploy", "--tag", "vA")
    if not all((current_release(remote) or "").endswith("-vB") for remote in remotes):
        run_task("deploy", "--tag", "vB")
    load_demo_seed_sync(sandbox.postgres.dsn(DATABASE, user=APP_ROLE))


@pytest.fixture
def token(on_vb, hosts) -> str:
    """A fresh access token of a seeded user (15 minutes: one per test outlives any operation)."""
    request = urllib.request.Request(
        nginx_urls(hosts[:1], "/api/v1/auth/login")[0],
        data=json.dumps({"email": "alice@clicknback.com", "password": "Str0ng!Pass"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def purchase(external_id: str) -> dict:
    return {"external_id": external_id, "user_id": ALICE, "merchant_id": SHOPLY, "amount": "10.00", "currency": "EUR"}


def loads(hosts, token: str, name: str) -> tuple[LoadGenerator, LoadGenerator]:
    """The keep-alive and the fresh-connection load for one operation, on every host's nginx."""
    calls = [Call(url) for url in nginx_urls(hosts, "/api/v1/users/me")] + [
        Call(url, "POST", purchase, 201) for url in nginx_urls(hosts, "/api/v1/purchases")
    ]
    run = uuid.uuid4().hex[:8]  # external_ids stay unique across test sessions on one database
    return tuple(  # type: ignore[return-value]
        LoadGenerator(
            calls=calls,
            headers={"Authorization": f"Bearer {token}"},
            keep_alive=keep_alive,
            threads=THREADS,
            per_thread_rate=PER_THREAD_RATE,
            request_id_prefix=f"{name}-{mode}-{run}",
        )
        for keep_alive, mode in ((True, "ka"), (False, "fresh"))
    )


def under_load(run_task, hosts, token: str, name: str, *args: str, check: bool = True):
    kept, fresh = loads(hosts, token, name)
    with kept, fresh:
        result = run_task(*args, check=check)
    for mode, load in (("keepalive", kept), ("fresh", fresh)):
        record_figure(f"failed_{mode}_requests_during_{name}", len(load.failures))
        record_figure(f"{mode}_requests_during_{name}", load.ok)
    print(  # the figures of docs/adr/0008, also in bench/results/deploy_figures.json
        f"{name}: keep-alive {kept.ok} ok / {len(kept.failures)} failed on {kept.connections_opened} connections;"
        f" fresh {fresh.ok} ok / {len(fresh.failures)} failed; load average {os.getloadavg()}"
    )
    return result, kept, fresh


def assert_nothing_lost(kept: LoadGenerator, fresh: LoadGenerator) -> None:
    assert kept.still_running_at_stop and fresh.still_running_at_stop
    assert kept.failures == [], (len(kept.failures), kept.ok, kept.failures[:8])
    assert fresh.failures == [], (len(fresh.failures), fresh.ok, fresh.failures[:8])
    assert kept.ok > 50 and fresh.ok > 50, (kept.ok, fresh.ok)
    # The keep-alive load did keep its connections: far fewer than one per request.
    assert kept.connections_opened < kept.ok / 5, (kept.connections_opened, kept.ok)


def test_keep_alive_clients_lose_nothing_across_a_code_only_deploy(run_task, hosts, remotes, token):
    result, kept, fresh = under_load(run_task, hosts, token, "keepalive_deploy", "deploy", "--tag", "vC")
    assert "deployed vC" in result.output
    assert all(current_release(r).endswith("-vC") for r in remotes)
    assert_nothing_lost(kept, fresh)


def test_keep_alive_clients_lose_nothing_across_a_broken_deploy(run_task, hosts, remotes, token):
    result, kept, fresh = under_load(
        run_task, hosts, token, "keepalive_broken_deploy", "deploy", "--tag", "vBroken", check=False
    )
    assert result.returncode != 0 and "failed the health gate" in result.output, result.output
    assert all(current_release(r).endswith("-vC") for r in remotes)
    assert_nothing_lost(kept, fresh)


def test_keep_alive_clients_lose_nothing_across_a_rollback(run_task, hosts, remotes, token):
    # --to: after test_deploy_flow.py the default target (by the ledger, skipping releases marked
    # bad) is another release; which one does not matter here.
    result, kept, fresh = under_load(run_task, hosts, token, "keepalive_rollback", "rollback", "--to", "vB")
    assert all(current_release(r).endswith("-vB") for r in remotes), result.output
    assert_nothing_lost(kept, fresh)


def test_keep_alive_clients_lose_nothing_across_a_rollback_with_downgrade(run_task, hosts, remotes, token):
    result, kept, fresh = under_load(
        run_task, hosts, token, "keepalive_downgrade", "rollback", "--to", "vA", "--downgrade"
    )
    assert "undone 1" in result.output, result.output
    assert all(current_release(r).endswith("-vA") for r in remotes)
    assert_nothing_lost(kept, fresh)


def test_keep_alive_clients_lose_nothing_across_a_migrating_deploy(run_task, hosts, remotes, token):
    result, kept, fresh = under_load(run_task, hosts, token, "keepalive_migrating_deploy", "deploy", "--tag", "vB")
    assert "migrate: applied 1:" in result.output, result.output
    assert all(current_release(r).endswith("-vB") for r in remotes)
    assert_nothing_lost(kept, fresh)

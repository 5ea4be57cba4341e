import asyncio
import time

from server import db_migrations
from server.app import create_app
from server.config import Settings
from tests.conftest import TEST_KEY
from tests.support.client import AppClient


async def test_live_needs_no_auth_and_does_no_io(client):
    response = await client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "alive"}
    assert response.headers["x-request-id"]


async def test_ready_when_database_and_migrations_are_ok(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


def _ops_migrate(database_url: str, *args: str) -> None:
    """Migrations run in their own process, as the deploy runs them (Tortoise state is global)."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", "migrate", *args],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "ENV_FILE": "/dev/null"},
        timeout=120,
    )


async def test_ready_reports_a_migration_behind_the_code(client, database_url):
    await asyncio.to_thread(_ops_migrate, database_url, "--to", "0")
    response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"].startswith("mismatch")
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE" and body["error"]["message"].startswith("migrations:")
    await asyncio.to_thread(_ops_migrate, database_url)
    assert (await client.get("/health/ready")).status_code == 200


async def test_ready_turns_503_while_draining(client):
    client.app.ctx.draining = True
    response = await client.get("/health/ready")
    client.app.ctx.draining = False
    assert response.status_code == 503
    assert response.json()["checks"]["shutdown"] == "draining"
    assert (await client.get("/health/live")).status_code == 200


async def test_debug_routes_are_admin_only(client, user, admin):
    for path in ("/debug/version", "/debug/database-stats"):
        assert (await client.get(path)).status_code == 401
        forbidden = await client.get(path, token=user.token)
        assert forbidden.status_code == 403 and forbidden.json()["error"]["details"] == {"required_role": "admin"}


async def test_debug_version(client, admin):
    response = await client.get("/debug/version", token=admin.token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"version", "commit", "deployed_at", "started_at", "migration_head", "python", "sanic"}
    assert body["migration_head"] == db_migrations.code_head()


async def test_debug_database_stats_counts_queries(client, admin):
    await client.get("/api/v1/users/me", token=admin.token)
    response = await client.get("/debug/database-stats", token=admin.token)
    assert response.status_code == 200
    body = response.json()
    assert set(body["pool"]) == {"min_size", "max_size", "size", "idle"}
    assert body["queries"]["total"] >= 2 and body["queries"]["slow_threshold_ms"] == 1000
    assert body["database"]["size_bytes"] > 0 and isinstance(body["database"]["connections"], dict)
    assert "users" in body["tables"] and body["scope"] == "process"


async def test_readiness_follows_the_database_down_and_back(tmp_path):
    """A cluster of its own, stopped and started again: the process recovers without a restart, and
    while the database is down its routes answer 503, not 500."""
    from devtools.local_postgres import LocalPostgres, wait_until_accepting

    cluster = LocalPostgres(tmp_path / "pg")
    await asyncio.to_thread(cluster.start)
    try:
        await asyncio.to_thread(cluster.create_database, "app")
        url = cluster.dsn("app")
        await asyncio.to_thread(_ops_migrate, url)
        client = AppClient(
            create_app(
                Settings(
                    database_url=url,
                    oauth_hash_key=TEST_KEY,
                    purchase_job_enabled=False,
                    db_pool_min_size=1,
                    db_pool_max_size=4,
                )
            )
        )
        await client.start()
        try:
            assert (await client.get("/health/ready")).status_code == 200
            # The throwaway cluster runs with synchronous_commit=off: an immediate stop loses commits
            # of the last ~200 ms (here: the newest migration, which then reads as "mismatch").
            await asyncio.to_thread(cluster.psql, "CHECKPOINT", "app")
            await asyncio.to_thread(cluster.stop, "immediate")
            down = await client.get("/health/ready")
            assert down.status_code == 503
            assert down.json()["checks"]["database"].startswith("unavailable")
            assert (await client.get("/health/live")).status_code == 200
            # A route that needs the database answers 503 SERVICE_UNAVAILABLE with Retry-After, not a 500.
            refused = await client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "Secret123!"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert refused.headers["retry-after"] == "5"
            await asyncio.to_thread(cluster.start)
            # The database itself is back (a test-infrastructure failure says so, not readiness).
            await asyncio.to_thread(wait_until_accepting, cluster.host, cluster.port, 30)
            # Ready again without a restart, within seconds of the database accepting queries.
            deadline = time.monotonic() + 30
            while (ready := await client.get("/health/ready")).status_code != 200:
                assert time.monotonic() < deadline, f"readiness did not recover within 30 s: {ready.text}"
                await asyncio.sleep(0.05)
        finally:
            await client.stop()
    finally:
        await asyncio.to_thread(cluster.destroy)

"""DATABASE_URL through PostgreSQL's Unix-domain socket (`...@:port/db?host=/folder`): the pool,
the readiness probe and the libpq tools (pg_dump, psql) all connect that way, never over TCP."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from deploy.ops.backup.commands import find_pg_client, libpq_environment
from server import db

# inet_server_addr() is NULL exactly when the session came in over a Unix-domain socket.
TRANSPORT_SQL = "SELECT inet_server_addr() IS NULL AS over_socket"


@pytest.fixture
def socket_url(databases, database_url) -> str:
    name = database_url.rsplit("/", 1)[1]
    return databases.socket_url(name)


@pytest.fixture
def settings(settings, socket_url):
    """The shared fixtures (client, make_account) then run the app on the socket URL."""
    return replace(settings, database_url=socket_url)


async def test_the_app_serves_over_the_socket(client, user, socket_url):
    assert "?host=/" in socket_url
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"
    me = await client.get("/api/v1/users/me", user.token)
    assert me.status_code == 200 and me.json()["email"] == user.email
    assert await db.pool().fetchval(TRANSPORT_SQL) is True


def test_libpq_tools_take_the_socket_folder_as_host(socket_url):
    psql = find_pg_client("psql")
    result = subprocess.run(
        [psql, "-X", "-A", "-t", "-c", TRANSPORT_SQL],
        env=libpq_environment(socket_url),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"

"""End-to-end fixtures: real server processes over HTTP, with the demo seed."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator

import httpx
import pytest

from server.seed import load_demo_seed
from tests.conftest import TEST_KEY
from tests.support.server_process import ServerProcess

DEMO_REJECTION_MERCHANT = "f0000000-0000-0000-0000-000000000001"


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# A run stopped with SIGTERM (a CI or `timeout` limit) would die without fixture teardown, leaving
# sshd hosts, crontab blocks and /var/tmp/cnb-e2e-* behind; as an interrupt, pytest tears down first.
if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _interrupt)


class SeededServer:
    """A demo-seeded database, one running server process and an HTTP client to it."""

    def __init__(self, database_url: str, server: ServerProcess) -> None:
        self.database_url = database_url
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10.0)

    def login(self, email: str, password: str = "Str0ng!Pass") -> str:
        response = self.http.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def seeded_database(databases) -> Iterator[str]:
    name = databases.create("seeded")
    url = databases.url(name)
    asyncio.run(load_demo_seed(url))
    yield url
    databases.drop(name)


@pytest.fixture
def server_env() -> dict[str, str]:
    """Override in a test module to change the server's settings (e.g. a short job interval)."""
    return {}


@pytest.fixture
def seeded_server(seeded_database, server_env) -> Iterator[SeededServer]:
    server = ServerProcess(seeded_database, TEST_KEY, env=server_env).start()
    seeded = SeededServer(seeded_database, server)
    yield seeded
    seeded.http.close()
    server.stop()

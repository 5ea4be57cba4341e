"""Who the client is (X-Real-IP only from a trusted proxy) and Vary: Origin (API.md §1.9)."""

from __future__ import annotations

import httpx
import pytest

from server.app import create_app
from tests.conftest import with_settings
from tests.support.client import AppClient


async def _failed_login_ip(settings, conn, peer: str, email: str) -> str:
    """The address login_attempts records for a failed login sent from `peer` with an X-Real-IP."""
    app_client = AppClient(create_app(settings))
    app_client.app.config.REAL_IP_HEADER = "x-real-ip"  # as supervisor starts production's instances
    app_client.http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_client.app, client=(peer, 50000)), base_url="http://testserver"
    )
    await app_client.start()
    try:
        response = await app_client.post(
            "/api/v1/auth/login",
            json={"email": email, "password": "Wrong!Pass1"},
            headers={"X-Real-IP": "203.0.113.7"},
        )
        assert response.status_code == 401
    finally:
        await app_client.stop()
    return str(await conn.fetchval("SELECT host(ip) FROM login_attempts WHERE email = $1", email))


async def test_x_real_ip_names_the_client_only_when_the_peer_is_a_trusted_proxy(settings, conn):
    settings = with_settings(settings, trusted_proxies=("127.0.0.1", "10.1.0.0/16"))
    assert await _failed_login_ip(settings, conn, "198.51.100.9", "direct@example.test") == "198.51.100.9"
    assert await _failed_login_ip(settings, conn, "10.1.2.3", "proxied@example.test") == "203.0.113.7"
    assert await _failed_login_ip(settings, conn, "127.0.0.1", "local@example.test") == "203.0.113.7"


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
async def test_vary_origin_is_on_answers_to_refused_origins_too(client, method):
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    refused = await client.request(method, "/health/live", headers=headers)
    assert refused.headers["vary"] == "Origin" and "access-control-allow-origin" not in refused.headers
    allowed = await client.request(method, "/health/live", headers={**headers, "Origin": "https://clicknback.com"})
    assert allowed.headers["vary"] == "Origin"
    assert allowed.headers["access-control-allow-origin"] == "https://clicknback.com"

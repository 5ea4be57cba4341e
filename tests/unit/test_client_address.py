"""server.http.client_address names the same client as Sanic's request.client_ip, whatever the
proxy headers say, in production's configuration and in others (where it defers to Sanic)."""

import pytest
from sanic import Sanic
from sanic.compat import Header
from sanic.request import Request

from server.http import client_address

_apps = iter(range(10_000))


def _request(config: dict, headers: dict) -> Request:
    app = Sanic(f"client_address_{next(_apps)}", configure_logging=False)
    app.config.update(config)
    return Request(b"/health/live", Header(headers), "1.1", "GET", None, app)


PRODUCTION = {"REAL_IP_HEADER": "x-real-ip"}
HEADERS = [
    {},
    {"X-Real-IP": "203.0.113.7"},
    {"X-Real-IP": "2001:DB8::1"},  # bracketed and lower-cased
    {"X-Real-IP": "unknown"},  # ignored: the peer is named
    {"X-Real-IP": "_Hidden"},  # obfuscated names keep their case
    {"X-Real-IP": "Some.Host"},
    {"X-Real-IP": ""},
    {
        "X-Real-IP": "198.51.100.2",
        "X-Forwarded-For": "192.0.2.1",
        "X-Forwarded-Proto": "HTTPS",
        "X-Forwarded-Port": "not-a-port",
        "Forwarded": "for=192.0.2.9;secret=s",
    },
    {"X-Forwarded-For": "192.0.2.1, 192.0.2.2"},
    {"Forwarded": "for=192.0.2.9;secret=s", "X-Real-IP": "198.51.100.2"},
]
CONFIGS = [
    PRODUCTION,
    {},  # no proxy configured: the peer
    {"REAL_IP_HEADER": "x-real-ip", "FORWARDED_SECRET": "s"},  # Forwarded wins: Sanic's path
    {"PROXIES_COUNT": 1},
    {"REAL_IP_HEADER": "x-real-ip", "PROXIES_COUNT": 2},
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("headers", HEADERS)
def test_names_the_client_sanic_names(config, headers):
    assert client_address(_request(config, headers)) == _request(config, headers).client_ip


def test_production_names_the_client_nginx_names():
    assert client_address(_request(PRODUCTION, {"X-Real-IP": "203.0.113.7"})) == "203.0.113.7"
    assert client_address(_request(PRODUCTION, {"X-Real-IP": "2001:DB8::1"})) == "[2001:db8::1]"

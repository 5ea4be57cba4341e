"""The wrk scripts that record purchases and mix routes send what their scenario says: each run
against a stand-in server on loopback that records every request (1 s, two connections)."""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

import pytest

from bench.scenarios import BENCH_USERS, SEED_PASSWORD, SHOPLY, Context, scenarios
from bench.wrk import run_wrk

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")

USERS = 5
TOKENS = [f"token-{i}" for i in range(USERS)]
IDS = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(USERS)]


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the service answers
    disable_nagle_algorithm = True  # the head and the body go in two writes

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cast(_RecordingServer, self.server).requests.append((self.command, self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _record  # noqa: N815 (http.server's naming)

    def log_message(self, *args):
        pass


class _RecordingServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.requests: list[tuple[str, str, dict, bytes]] = []


def recorded(scenario: str) -> list[tuple[str, str, dict, bytes]]:
    ctx = Context("", {"user": "u", "admin": "a", "heavy": "h", "bench_users": TOKENS, "bench_user_ids": IDS})
    lua = next(s.lua for s in scenarios(ctx) if s.name == scenario)
    server = _RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        figures = run_wrk(f"http://127.0.0.1:{server.server_port}", lua, 2, 1)
    finally:
        server.shutdown()
        server.server_close()
    assert figures["requests"] >= 500
    return server.requests


def route(request) -> str:
    method, path, _, _ = request
    return f"{method} {path}"


def assert_purchases_of_the_token_holder(requests, amount: str) -> None:
    """Each purchase is the authenticated bench user's own, with a new external id."""
    posts = [r for r in requests if route(r) == "POST /api/v1/purchases"]
    assert posts
    for _, _, headers, body in posts:
        purchase = json.loads(body)
        assert headers["Content-Type"] == "application/json"
        assert headers["Authorization"] == f"Bearer {TOKENS[IDS.index(purchase['user_id'])]}"
        assert (purchase["merchant_id"], purchase["amount"], purchase["currency"]) == (SHOPLY, amount, "EUR")
    external_ids = [json.loads(body)["external_id"] for *_, body in posts]
    assert len(set(external_ids)) == len(external_ids)


def assert_mix(requests, cycle: int, parts: dict[str, int]) -> None:
    """Each route takes `parts[route]` of every `cycle` requests, in the order given. The script
    picks by its request counter, so the counts are exact, but for the few requests in flight when
    wrk stopped (at most one per connection)."""
    assert sum(parts.values()) == cycle
    counts = Counter(route(r) for r in requests)
    assert set(counts) == set(parts)
    low = 0
    for name, part in parts.items():
        # requests 1..n whose counter modulo `cycle` falls in this route's [low, low + part)
        expected = sum(1 for n in range(1, len(requests) + 1) if low <= n % cycle < low + part)
        assert abs(counts[name] - expected) <= 2, (name, counts[name], expected)
        low += part


def test_ingest_posts_only_purchases_spread_over_the_bench_users():
    requests = recorded("purchase_ingest")
    assert {route(r) for r in requests} == {"POST /api/v1/purchases"}
    assert_purchases_of_the_token_holder(requests, "10.00")
    assert {json.loads(body)["user_id"] for *_, body in requests} == set(IDS)


def test_mixed_is_four_tenths_offers_and_two_tenths_each_wallet_own_list_and_purchases():
    requests = recorded("mixed")
    assert_mix(
        requests,
        10,
        {
            "GET /api/v1/offers/active?limit=20": 4,
            "GET /api/v1/users/me/wallet": 2,
            "GET /api/v1/users/me/purchases?limit=10": 2,
            "POST /api/v1/purchases": 2,
        },
    )
    assert all(r[2]["Authorization"].removeprefix("Bearer ") in TOKENS for r in requests)
    assert_purchases_of_the_token_holder(requests, "25.00")


def test_mix_with_logins_is_issue_24s_mix_and_logs_in_the_bench_users():
    requests = recorded("mixed_with_logins")
    assert_mix(
        requests,
        50,
        {
            "GET /api/v1/offers/active?limit=20": 20,
            "GET /api/v1/users/me/wallet": 15,
            "POST /api/v1/purchases": 10,
            "GET /health/live": 4,
            "POST /api/v1/auth/login": 1,
        },
    )
    assert_purchases_of_the_token_holder(requests, "25.00")
    logins = [json.loads(body) for method, path, _, body in requests if path == "/api/v1/auth/login"]
    emails = {f"bench{i}@example.test" for i in range(BENCH_USERS)}
    assert all(login["email"] in emails and login["password"] == SEED_PASSWORD for login in logins)

"""Production's nginx (deploy/templates/nginx.conf.tmpl, rendered by the production renderer) in
front of a stand-in instance: its per-address limit on login and registration (API.md §2.3), from
several loopback source addresses, and its own answers to oversized heads, in the JSON envelope."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bench.front import NginxFront
from devtools.local_postgres import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]


class _Instance(BaseHTTPRequestHandler):
    """A stand-in instance that accepts every request: whatever is refused, nginx refused."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_OPTIONS = _answer  # noqa: N815 (http.server's naming)

    def log_message(self, *args):
        pass


@contextmanager
def _nginx_over(instances: list[ThreadingHTTPServer], credentials_limit: bool = True) -> Iterator[NginxFront]:
    """Production's nginx in front of stand-in instances already serving; all stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix="cnb-nginx-front-"))
    os.chmod(root, 0o755)  # nginx workers run as nobody when the tests run as root
    ports = tuple(server.server_port for server in instances)
    nginx = NginxFront(
        root / "front",
        free_port(),
        ports,
        binary=shutil.which("nginx"),
        instance_listen="tcp",
        credentials_limit=credentials_limit,
    )
    try:
        nginx.start()
        yield nginx
    finally:
        nginx.stop()
        for server in instances:
            server.shutdown()
            server.server_close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def front():
    instance = ThreadingHTTPServer(("127.0.0.1", 0), _Instance)
    threading.Thread(target=instance.serve_forever, daemon=True).start()
    with _nginx_over([instance]) as nginx:
        yield nginx


def _client(front: NginxFront, source: str) -> httpx.Client:
    return httpx.Client(base_url=front.url, transport=httpx.HTTPTransport(local_address=source), timeout=5)


def test_login_and_registration_are_limited_per_client_address(front):
    body = {"email": "flood@example.test", "password": "x"}
    with _client(front, "127.0.0.2") as flooder:
        statuses = [flooder.post("/api/v1/auth/login", json=body).status_code for _ in range(25)]
        assert statuses[:11] == [200] * 11  # the burst, and the one the rate allows
        assert statuses.count(429) >= 12
        refused = flooder.post("/api/v1/users/", json=body)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/json"
        assert refused.headers["retry-after"] == "2"
        assert refused.headers["x-request-id"]
        assert refused.json() == {
            "error": {
                "code": "TOO_MANY_REQUESTS",
                "message": "Too many requests from this address. Please retry later.",
                "details": {"retry_after_seconds": 2},
            }
        }
        # Everything else from the same address still passes, preflights of login included.
        assert flooder.get("/api/v1/offers/active").status_code == 200
        assert flooder.options("/api/v1/auth/login").status_code == 200
    for source in ("127.0.0.3", "127.0.0.4"):  # other addresses are not held back by the flooder
        with _client(front, source) as other:
            assert other.post("/api/v1/auth/login", json=body).status_code == 200
            assert other.post("/api/v1/users", json=body).status_code == 200


def test_nginx_answers_oversized_heads_in_the_json_envelope(front):
    with httpx.Client(base_url=front.url, timeout=5) as http:
        long_url = http.get("/health/live?q=" + "a" * 9000)
        big_header = http.get("/health/live", headers={"X-Big": "a" * 9000})
    assert long_url.status_code == 414
    assert long_url.json()["error"] == {
        "code": "URI_TOO_LONG",
        "message": "Request target exceeds 8192 bytes.",
        "details": {"max_bytes": 8192},
    }
    assert big_header.status_code == 431
    assert big_header.json()["error"]["code"] == "HEADERS_TOO_LARGE"
    assert big_header.headers["content-type"] == "application/json" and big_header.headers["x-request-id"]


BUSY = b'{"error": {"code": "SERVICE_BUSY", "message": "busy", "details": {}}}'


def _stand_in(answer: int, seen: list[str]) -> ThreadingHTTPServer:
    """An instance that answers every POST with `answer` (503: its hashing queue is full) and notes it."""

    class Handler(_Instance):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(self.path)
            if answer == 200:
                return self._answer()
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(answer)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(BUSY)))
            self.end_headers()
            self.wfile.write(BUSY)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def busy_and_free():
    """nginx over two stand-ins: the first answers every POST 503 SERVICE_BUSY, the second 200."""
    busy_seen: list[str] = []
    free_seen: list[str] = []
    with _nginx_over([_stand_in(503, busy_seen), _stand_in(200, free_seen)], credentials_limit=False) as nginx:
        yield nginx, busy_seen, free_seen


def test_a_login_refused_by_a_busy_instance_is_tried_on_the_next_one(busy_and_free):
    front, busy_seen, free_seen = busy_and_free
    body = {"email": "someone@example.test", "password": "x"}
    with httpx.Client(base_url=front.url, timeout=5) as http:
        logins = [http.post("/api/v1/auth/login", json=body).status_code for _ in range(6)]
        registrations = [http.post("/api/v1/users", json=body).status_code for _ in range(6)]
    # A 503 from the hashing queue comes before the login or registration does anything, so nginx
    # may send it to the other instance (nginx.conf.tmpl: non_idempotent on these two routes).
    assert logins == [200] * 6 and registrations == [200] * 6
    assert busy_seen, "round robin sent some of them to the busy instance first"
    assert free_seen.count("/api/v1/auth/login") == 6 and free_seen.count("/api/v1/users") == 6


def test_other_posts_are_never_sent_twice(busy_and_free):
    front, busy_seen, free_seen = busy_and_free
    body = {"external_id": "x", "amount": "1.00"}
    with httpx.Client(base_url=front.url, timeout=5) as http:
        answers = [http.post("/api/v1/purchases", json=body) for _ in range(6)]
    statuses = [answer.status_code for answer in answers]
    # Elsewhere a 503 may come after the work was done: it reaches the client as the instance sent it.
    assert len(busy_seen) + len(free_seen) == 6
    assert 503 in statuses and 200 in statuses
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert refused.json()["error"]["code"] == "SERVICE_BUSY" and refused.headers["retry-after"] == "1"

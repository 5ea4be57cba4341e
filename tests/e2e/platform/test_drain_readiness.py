"""Readiness while draining (API.md §1.9, §3.1): after SIGTERM, a probe on a kept connection
answers 503 while an in-flight request finishes; then the process exits."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from server.drain import CLOSE_IDLE_AFTER_SECONDS
from server.listen import PROXY_KEEPALIVE_SECONDS
from tests.conftest import TEST_KEY, TEST_PASSWORD
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.e2e


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a body"
        body += chunk
    return int(status_line.split(" ")[1]), headers, body[:length]


PROBE = b"GET /health/ready HTTP/1.1\r\nHost: test\r\n\r\n"


def test_a_probe_on_a_kept_connection_answers_503_while_in_flight_requests_finish(database_url):
    server = ServerProcess(database_url, TEST_KEY).start()
    try:
        with httpx.Client(base_url=server.url) as http:
            created = http.post("/api/v1/users", json={"email": "drain@example.test", "password": TEST_PASSWORD})
            assert created.status_code == 201
        kept = socket.create_connection((server.host, server.port), timeout=10)
        kept.sendall(PROBE)
        status, headers, _ = _read_response(kept)
        assert status == 200 and headers.get("connection", "keep-alive") == "keep-alive"

        body = json.dumps({"email": "drain@example.test", "password": TEST_PASSWORD}).encode()
        in_flight = socket.create_connection((server.host, server.port), timeout=10)
        in_flight.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        server.process.send_signal(15)
        deadline = time.monotonic() + 10
        while "draining: readiness now 503" not in "\n".join(server.log_lines()):
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.02)  # polling the log for the condition, with a deadline

        kept.sendall(PROBE)  # on the connection kept from before the signal
        status, headers, payload = _read_response(kept)
        assert status == 503, payload
        assert json.loads(payload)["checks"]["shutdown"] == "draining"
        assert headers["connection"] == "close"
        assert server.process.poll() is None  # still draining: the login is in flight

        in_flight.sendall(body[10:])
        status, _, payload = _read_response(in_flight)
        assert status == 200 and "access_token" in json.loads(payload)
        assert server.process.wait(timeout=20) == 0
        kept.close()
        in_flight.close()
    finally:
        server.stop()


def test_an_idle_kept_connection_stays_open_until_the_proxy_can_no_longer_use_it(database_url):
    """nginx may send on a cached connection until its keepalive_timeout: while draining, such a
    request is answered (with Connection: close), and an idle connection is closed by the instance
    only after that timeout, so nginx never sends into a connection being closed."""
    server = ServerProcess(database_url, TEST_KEY).start()
    try:
        reused, idle = (socket.create_connection((server.host, server.port), timeout=10) for _ in range(2))
        for sock in (reused, idle):
            sock.sendall(PROBE)
            assert _read_response(sock)[0] == 200
        last_answer = time.monotonic()
        server.process.send_signal(15)
        deadline = time.monotonic() + 10
        while "draining: readiness now 503" not in "\n".join(server.log_lines()):
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.02)  # polling the log for the condition, with a deadline

        # Nothing is in flight, yet a request on a kept connection within nginx's timeout is answered.
        assert time.monotonic() - last_answer < PROXY_KEEPALIVE_SECONDS, "the stop signal took too long to land"
        reused.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
        status, headers, _ = _read_response(reused)
        assert status == 200 and headers["connection"] == "close"
        assert reused.recv(1) == b""  # then closed, by the instance, after its answer

        idle.settimeout(CLOSE_IDLE_AFTER_SECONDS + 10)
        assert idle.recv(1) == b""  # closed by the instance once nginx can no longer use it...
        assert time.monotonic() - last_answer >= CLOSE_IDLE_AFTER_SECONDS - 0.05  # ...and not before
        assert server.process.wait(timeout=20) == 0
        reused.close()
        idle.close()
    finally:
        server.stop()

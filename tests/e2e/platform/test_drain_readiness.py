"""Readiness while draining (API.md §1.9, §3.1): after SIGTERM, a probe on a kept connection
answers 503 while an in-flight request finishes; then the process exits."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

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

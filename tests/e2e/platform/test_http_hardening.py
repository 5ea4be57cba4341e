"""A real server process against a malformed or oversized request head, and the log levels of
client mistakes (API.md §1.3, §1.9)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.conftest import TEST_KEY
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(database_url):
    process = ServerProcess(database_url, TEST_KEY).start()
    yield process
    process.stop()


def _exchange(server: ServerProcess, raw: bytes) -> tuple[int, dict[str, str], dict]:
    """Send raw bytes on a new connection; the status, headers and JSON body of the one answer."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(raw)
        received = b""
        while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < _length(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, json.loads(body[: int(headers["content-length"])])


def _length(received: bytes) -> int:
    for line in received.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


def test_an_oversized_head_is_431_or_414_and_malformed_framing_is_400(server):
    big_header = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    status, headers, body = _exchange(server, big_header)
    assert status == 431 and body["error"]["code"] == "HEADERS_TOO_LARGE", body
    assert body["error"]["details"] == {"max_bytes": 8192} and headers["content-type"].startswith("application/json")
    long_url = b"GET /health/live?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, _, body = _exchange(server, long_url)
    assert status == 414 and body["error"] == {
        "code": "URI_TOO_LONG",
        "message": "Request target exceeds 8192 bytes.",
        "details": {"max_bytes": 8192},
    }
    malformed = [
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -2\r\n\r\n{}",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        b"GET /health/live now HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health/live HTTP/2.0\r\nHost: x\r\n\r\n",
    ]
    for raw in malformed:
        status, _, body = _exchange(server, raw)
        assert (status, body["error"]["code"], body["error"]["details"]) == (400, "BAD_REQUEST", {}), raw
    with httpx.Client(base_url=server.url) as http:  # and the server still serves
        assert http.get("/health/live").status_code == 200


def test_client_mistakes_are_never_logged_as_errors(server):
    with httpx.Client(base_url=server.url) as http:
        body_on_a_get = http.request(
            "GET", "/health/live", content=b'{"x":1}', headers={"Content-Type": "application/json"}
        )
        assert body_on_a_get.status_code == 200
        assert http.get("/api/v1/users/me", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.post("/api/v1/auth/login", content=b"{", headers={"Content-Type": "application/json"}).is_error
    _exchange(server, b"GET /health/live HTTP/2.0\r\nHost: x\r\n\r\n")
    _exchange(server, b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    server.stop()
    records = server.log_records()
    assert any("body not consumed" in record.get("message", "") for record in records)  # it was logged...
    assert [r for r in records if r.get("level") in ("ERROR", "CRITICAL")] == []  # ...but not as an error


@pytest.mark.parametrize(("path", "status"), [("/api/v1/auth/login", 413), ("/api/v1/nope", 404)])
def test_an_oversized_body_is_answered_then_read_to_its_end_before_the_connection_closes(server, path, status):
    """A proxy that buffered the whole body (nginx) is still writing it when the early answer comes:
    closing then would fail its write, and nginx would answer 502 instead of relaying the 413/404.
    The client here sends the head, reads the answer, and only then sends the body: every byte must
    still be taken, and the connection close after it."""
    body = b"{" + b" " * (1024 * 1024) + b"}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head)
        received = b""
        while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < _length(received):
            chunk = sock.recv(65536)
            assert chunk, f"closed before the answer: {received!r}"
            received += chunk
        assert received.startswith(f"HTTP/1.1 {status} ".encode()), received[:200]
        assert b"connection: close" in received.lower()
        # The server has answered; without reading the rest it would close now and this write
        # would meet a reset or a broken pipe.
        sock.sendall(body)
        assert sock.recv(65536) == b""  # then it closes, cleanly

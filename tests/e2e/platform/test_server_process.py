"""The real server process, started as production starts it: probes, a request, SIGTERM drain, logs."""

import asyncio
import json
import socket
import time

import asyncpg
import httpx
import pytest

from server.db import parse_database_url
from tests.conftest import TEST_KEY
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.e2e
PASSWORD = "Str0ng!Pass"


@pytest.fixture
def server(database_url):
    process = ServerProcess(database_url, TEST_KEY).start()
    yield process
    process.stop()


def test_probes_and_a_request(server):
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/health/live").json() == {"status": "alive"}
        assert http.get("/health/ready").json()["status"] == "ready"
        created = http.post("/api/v1/users", json={"email": "proc@example.test", "password": PASSWORD})
        assert created.status_code == 201
        assert http.get("/api/v1/nope").json()["error"]["code"] == "NOT_FOUND"


def test_sigterm_lets_the_in_flight_request_finish(server):
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/api/v1/users", json={"email": "drain@example.test", "password": PASSWORD}).status_code == 201
    body = json.dumps({"email": "drain@example.test", "password": PASSWORD}).encode()
    sock = socket.create_connection((server.host, server.port), timeout=20)
    head = (
        f"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:10])  # the request is in flight: half its body is on the wire
    server.process.send_signal(15)
    # The process must keep serving this request while it drains.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "draining" not in "\n".join(server.log_lines()):
        time.sleep(0.02)
    assert server.process.poll() is None, "the process exited before its in-flight request finished"
    assert "draining: readiness now 503" in "\n".join(server.log_lines())
    sock.sendall(body[10:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert server.process.wait(timeout=20) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health/live", timeout=2)


def answer_before_the_body(server, head: str) -> bytes:
    """Send a request's head only and read the answer's head: a 404, 405 or 413 comes before the
    body is read (sending the body too would race the server's close, and a close with unread data
    is a reset that can eat the answer)."""
    sock = socket.create_connection((server.host, server.port), timeout=20)
    try:
        sock.sendall(head.encode())
        received = b""
        while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
            received += chunk
    finally:
        sock.close()
    return received.split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize(
    "method, path, status",
    [("POST", "/api/v1/nope", b"404"), ("PUT", "/api/v1/auth/login", b"405"), ("POST", "/api/v1/auth/login", b"413")],
)
def test_an_unread_oversized_body_is_answered_with_connection_close(server, method, path, status):
    # 404 and 405 come before 413 (§1.7), so the body is never read; Sanic then drops the
    # connection, and the answer must say so rather than keep-alive.
    head = answer_before_the_body(
        server,
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: "
        f"application/json\r\nContent-Length: {1024 * 1024 + 1}\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 " + status), head
    assert b"\r\nconnection: close" in head.lower(), head
    # A body within the limit on an unknown route keeps the connection reusable.
    with httpx.Client(base_url=server.url) as http:
        first = http.post("/api/v1/nope", content=b"{}", headers={"Content-Type": "application/json"})
        assert first.status_code == 404 and first.headers["connection"] == "keep-alive"
        assert http.get("/health/live").status_code == 200


def test_a_client_that_hangs_up_mid_request_is_logged_499_not_as_a_server_error(server, database_url):
    """A hang-up (a client timeout, wrk stopping, a mobile app closed) is not a 5xx: the access line
    says 499, as nginx's does, and no `app.error` is logged, so the error rate stays the service's."""
    email = "hangup@example.test"
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/api/v1/users", json={"email": email, "password": PASSWORD}).status_code == 201
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    head = (
        f"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    def login_lines() -> list[dict]:
        return [
            r for r in server.log_records() if r.get("event") == "http.request" and r["path"] == "/api/v1/auth/login"
        ]

    async def hang_up_while_login_waits() -> None:
        holder = await asyncpg.connect(**parse_database_url(database_url))
        try:
            async with holder.transaction():
                # The login's refresh-token insert waits for this lock: the request is surely in flight.
                await holder.execute("LOCK TABLE refresh_tokens IN ACCESS EXCLUSIVE MODE")
                sock = socket.create_connection((server.host, server.port), timeout=20)
                sock.sendall(head + body)
                deadline = time.monotonic() + 20
                while not await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'refresh_tokens'::regclass"
                ):
                    assert time.monotonic() < deadline, "the login never reached its insert"
                    await asyncio.sleep(0.02)
                sock.close()
                while not login_lines():
                    assert time.monotonic() < deadline, "no access line for the abandoned login"
                    await asyncio.sleep(0.02)
        finally:
            await holder.close()

    asyncio.run(hang_up_while_login_waits())
    assert [line["status"] for line in login_lines()] == [499]
    with httpx.Client(base_url=server.url) as http:  # the instance serves on as before
        assert http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
    server.stop()
    assert not [r for r in server.log_records() if r.get("level") in ("ERROR", "CRITICAL")]


def test_logs_never_carry_passwords_or_tokens(server):
    email, password = "secret-keeper@example.test", "Sup3r$ecretPassw0rd"
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/api/v1/users", json={"email": email, "password": password}).status_code == 201
        tokens = http.post("/api/v1/auth/login", json={"email": email, "password": password}).json()
        assert (
            http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code
            == 200
        )
        rotated = http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        assert http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
        assert http.post("/api/v1/auth/login", json={"email": email, "password": password + "x"}).status_code == 401
        assert (
            http.get(
                "/api/v1/users/me", headers={"Authorization": "Bearer " + tokens["access_token"][:-3] + "abc"}
            ).status_code
            == 401
        )
    server.stop()
    text = "\n".join(server.log_lines())
    secrets = [
        password,
        password + "x",
        tokens["access_token"],
        tokens["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        tokens["access_token"].split(".")[1],
        tokens["refresh_token"].split(".")[2],
    ]
    for secret in secrets:
        assert secret not in text
    records = server.log_records()
    requests = [r for r in records if r.get("event") == "http.request"]
    assert {"request_id", "method", "route", "path", "status", "duration_ms", "user_id", "client"} <= set(requests[0])
    me = [r for r in requests if r["path"] == "/api/v1/users/me" and r["status"] == 200]
    assert me and me[0]["user_id"] and me[0]["route"] == "/api/v1/users/me"
    failures = [r for r in records if r.get("event") == "auth.failure"]
    assert {"invalid_credentials", "refresh_reuse", "bad_signature"} <= {r["reason"] for r in failures}
    assert all(r["level"] == "WARNING" for r in failures)


def test_behind_nginx_the_logged_client_is_the_one_nginx_names(database_url):
    # As supervisor starts production instances (deploy/templates/supervisor-program.conf.tmpl).
    server = ServerProcess(database_url, TEST_KEY, env={"SANIC_REAL_IP_HEADER": "x-real-ip"}).start()
    try:
        with httpx.Client(base_url=server.url) as http:
            assert http.get("/health/live", headers={"X-Real-IP": "203.0.113.7"}).status_code == 200
            assert http.get("/health/live").status_code == 200
    finally:
        server.stop()
    clients = [
        r["client"] for r in server.log_records() if r.get("event") == "http.request" and r["path"] == "/health/live"
    ]
    assert clients == ["203.0.113.7", "127.0.0.1"]


def test_on_a_unix_socket_it_serves_and_removes_the_socket_on_sigterm(database_url, tmp_path):
    """Production's shape (inventory instance_listen = "unix"): nginx reaches the instance by its socket."""
    socket_path = tmp_path / "run" / "app-8001.sock"
    socket_path.parent.mkdir()
    server = ServerProcess(
        database_url,
        TEST_KEY,
        env={"SANIC_REAL_IP_HEADER": "x-real-ip"},  # as supervisor
        unix=str(socket_path),
    ).start()
    try:
        assert socket_path.is_socket()
        with server.client() as http:
            assert http.get(server.url + "/health/live").json() == {"status": "alive"}
            me = http.get(server.url + "/api/v1/users/me", headers={"X-Real-IP": "203.0.113.7"})
            assert me.status_code == 401
    finally:
        assert server.stop() == 0
    assert not socket_path.exists()
    finished = [r for r in server.log_records() if r.get("event") == "http.request" and r["path"] == "/api/v1/users/me"]
    assert finished and finished[0]["client"] == "203.0.113.7"  # the address nginx names, as over TCP


def test_a_socket_folder_that_does_not_exist_is_one_line_and_exit_2(database_url, tmp_path):
    missing = tmp_path / "nowhere" / "app.sock"
    server = ServerProcess(database_url, TEST_KEY, unix=str(missing)).start(wait_ready=False)
    assert server.process.wait(30) == 2
    assert server.log_lines() == [f"--unix: the socket's folder {missing.parent} does not exist"]
    too_long = tmp_path / ("x" * 120 + ".sock")
    server = ServerProcess(database_url, TEST_KEY, unix=str(too_long)).start(wait_ready=False)
    assert server.process.wait(30) == 2
    assert server.log_lines()[-1].startswith("--unix: the socket path is longer than 99 bytes: ")

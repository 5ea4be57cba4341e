"""A bounded load generator: a few paced threads send requests until a budget, a deadline or stop.

Two connection modes. Fresh (the default) opens a new connection per request, like a client with no
pool. Keep-alive holds one persistent http.client connection per thread and origin, reused for
every request, like a browser or a pooled API client: it sees a connection the server side closes
between two requests (`RemoteDisconnected`), which fresh connections never do. No retries in
either mode: a request that does not get its expected answer is a failure, as a naive client
would see it.

Every unexpected status, and every connection error, is recorded as a failure. Pacing keeps the
load realistic (and leaves CPU to the operation being measured); `covered` tells whether the load
was still running when it was stopped, i.e. it spanned the whole operation.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Call:
    """One kind of request: `body(key)` makes a JSON body from a key unique to each request (so
    a POST ingestion gets a fresh external_id every time); `expect` is the status that counts as ok."""

    url: str
    method: str = "GET"
    body: Callable[[str], dict] | None = None
    expect: int = 200


@dataclass
class LoadGenerator:
    urls: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    keep_alive: bool = False
    max_requests: int = 20000
    deadline_s: float = 180.0
    threads: int = 4
    per_thread_rate: float = 10.0
    request_id_prefix: str = "load"
    sent: int = 0
    ok: int = 0
    connections_opened: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _deadline: float = 0.0
    still_running_at_stop: bool = False

    def __post_init__(self) -> None:
        self.calls = [*self.calls, *(Call(url) for url in self.urls)]
        if not self.calls:
            raise ValueError("LoadGenerator needs urls or calls")

    def _take(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or self.sent >= self.max_requests:
                return None
            self.sent += 1
            return self.sent

    @property
    def covered(self) -> bool:
        return self.sent < self.max_requests and time.monotonic() < self._deadline

    def _connection(self, pool: dict[tuple[str, int], http.client.HTTPConnection], host: str, port: int):
        """The thread's connection to host:port: a kept one, or a new one (counted)."""
        connection = pool.get((host, port)) if self.keep_alive else None
        if connection is None or connection.sock is None:  # http.client drops the socket on Connection: close
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=10)
            connection.connect()
            with self._lock:
                self.connections_opened += 1
            if self.keep_alive:
                pool[(host, port)] = connection
        return connection

    def _send(self, pool: dict, call: Call, number: int) -> str | None:
        """One request; None when it got its expected status, else what went wrong."""
        parts = urlsplit(call.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        key = f"{self.request_id_prefix}-{number}"
        headers = {**self.headers, "X-Request-ID": key}
        payload = None
        if call.body is not None:
            payload = json.dumps(call.body(key)).encode()
            headers["Content-Type"] = "application/json"
        connection = None
        try:
            connection = self._connection(pool, host, port)
            connection.request(call.method, parts.path, body=payload, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            if connection is not None:
                connection.close()
            pool.pop((host, port), None)
            return f"{call.method} {call.url} -> {type(error).__name__}: {error}"
        finally:
            if connection is not None and not self.keep_alive:
                connection.close()
        if response.status != call.expect:
            return f"{call.method} {call.url} -> {response.status} {body[:200]!r}"
        return None

    def _work(self, deadline: float) -> None:
        pool: dict[tuple[str, int], http.client.HTTPConnection] = {}
        try:
            while time.monotonic() < deadline and not self._stop.wait(1.0 / self.per_thread_rate):
                number = self._take()
                if number is None:
                    return
                failure = self._send(pool, self.calls[number % len(self.calls)], number)
                with self._lock:
                    if failure is None:
                        self.ok += 1
                    else:
                        self.failures.append(failure)
        finally:
            for connection in pool.values():
                connection.close()

    def __enter__(self) -> LoadGenerator:
        deadline = self._deadline = time.monotonic() + self.deadline_s
        self._workers = [
            threading.Thread(target=self._work, args=(deadline,), daemon=True) for _ in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.still_running_at_stop = self.covered
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

"""A bounded load generator: a few paced threads GET URLs until a request budget, a deadline or stop.

Every response that is not 200, and every connection error, is recorded as a failure. Pacing
keeps the load realistic (and leaves CPU to the deploy being measured); `covered` tells whether
the load was still running when it was stopped, i.e. it spanned the whole operation.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadGenerator:
    urls: list[str]
    max_requests: int = 20000
    deadline_s: float = 180.0
    threads: int = 4
    per_thread_rate: float = 10.0
    request_id_prefix: str = "load"
    sent: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    _deadline: float = 0.0
    still_running_at_stop: bool = False

    def _take(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or self.sent >= self.max_requests:
                return None
            self.sent += 1
            return self.sent

    @property
    def covered(self) -> bool:
        return self.sent < self.max_requests and time.monotonic() < self._deadline

    def _work(self, deadline: float) -> None:
        while time.monotonic() < deadline and not self._stop.wait(1.0 / self.per_thread_rate):
            number = self._take()
            if number is None:
                return
            url = self.urls[number % len(self.urls)]
            parts = urlsplit(url)
            try:
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                connection.request("GET", parts.path, headers={"X-Request-ID": f"{self.request_id_prefix}-{number}"})
                response = connection.getresponse()
                body = response.read()
                connection.close()
                if response.status == 200:
                    with self._lock:
                        self.ok += 1
                else:
                    with self._lock:
                        self.failures.append(f"{url} -> {response.status} {body[:200]!r}")
            except OSError as error:
                with self._lock:
                    self.failures.append(f"{url} -> {type(error).__name__}: {error}")

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

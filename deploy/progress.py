"""Progress of a host's venv build, told to the operator every few seconds.

A new requirements.lock makes the first deploy build a venv on every host, which takes tens of
seconds of pip with nothing else to see. The build's output is read line by line as it comes, and
a line per host says what pip is at (creating the venv, collecting, installing), at most every
INTERVAL seconds and at least that often while it builds, even while pip itself is silent
(compiling a wheel). A reused venv prints nothing: it is done at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

INTERVAL = 3.0  # seconds between two progress lines of one host
BUILDING = "venv-building"  # build_venv_command's first line when it builds (deploy/commands/releases.py)


class VenvProgress:
    """Fed the build's output lines (`feed`); says the build's state through `say`, every INTERVAL
    seconds from a ticker thread while the build runs (`with VenvProgress(...)`)."""

    def __init__(
        self, say: Callable[[str], None], interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic
    ):
        self.say, self.interval, self.clock = say, interval, clock
        self.started: float | None = None  # when the build began (None: no build seen)
        self.last_said = 0.0
        self.collected = 0
        self.installing = 0
        self.finished = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_until_stopped, daemon=True)

    def __enter__(self) -> VenvProgress:
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join(timeout=self.interval + 1)

    def feed(self, line: str) -> None:
        text = line.strip()
        with self._lock:
            if text == BUILDING:
                self.started = self.last_said = self.clock()
                self.say("building the venv (a new requirements.lock)")
                return
            if self.started is None or self.finished:
                return
            if text.startswith("Collecting "):
                self.collected += 1
            elif text.startswith("Installing collected packages:"):
                self.installing = len(text.split(":", 1)[1].split(","))
            elif text.startswith(("Successfully installed", "venv-built")):
                self.finished = True
                return
        self.tick()

    def tick(self) -> None:
        """Say where the build is when INTERVAL has passed since the last line."""
        with self._lock:
            if self.started is None or self.finished:
                return
            now = self.clock()
            if now - self.last_said < self.interval:
                return
            self.last_said = now
            message = f"building the venv: {self.state()}, {now - self.started:.0f}s so far"
        self.say(message)

    def state(self) -> str:
        if self.installing:
            return f"installing {self.installing} packages"
        if self.collected:
            return f"collected {self.collected} packages"
        return "creating it"

    def _tick_until_stopped(self) -> None:
        while not self._stop.wait(self.interval / 3):
            self.tick()

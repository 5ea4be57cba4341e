"""Ctrl-C (SIGINT) and SIGTERM during a deploy or rollback: stop at a safe point, never mid-step.

While a Guard is installed, the signal only records itself and says so in one line on stderr.
The task's main thread raises Interrupted at its next check: while it waits for the hosts
(Session.parallel polls), between flips, before the commit. A step that must run to its end (a
migration, a flip, the undo, the ledger line, releasing the lock) is not cut: its remote command
runs in the main thread or under `deferred()`. A second signal while the hosts are put back is
ignored and said so: a half-done undo would be worse than the wait, and a restart or a reboot
starts only the old release anyway (the standby slots never became live).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The operator's signal, raised at a safe point. A BaseException, like KeyboardInterrupt, so
    the `except Exception` of a step does not swallow it. `message` says where the hosts are."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"interrupted by {signal_name(signum)}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a command a signal ended: 130 for SIGINT."""
        return 128 + self.signum

    def saying(self, message: str) -> Interrupted:
        return Interrupted(self.signum, message)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class Guard:
    def __init__(self) -> None:
        self.received: int | None = None
        self.holding = 0  # > 0 inside deferred(): a signal waits for the end of the step
        self._previous: dict[int, object] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # os.write, not print: a handler may run in the middle of a print to the same stream.
        if self.received is None:
            self.received = signum
            line = (
                f"\ninterrupted by {signal_name(signum)}: finishing the current step, then putting every host"
                f" back on its old instances\n"
            )
        else:
            line = f"{signal_name(signum)} ignored: the hosts are being put back, which must not stop half-way\n"
        os.write(2, line.encode())

    def check(self) -> None:
        if self.received is not None and self.holding == 0 and threading.current_thread() is threading.main_thread():
            raise Interrupted(self.received)

    def install(self) -> None:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()


_active: Guard | None = None


@contextmanager
def guard() -> Iterator[Guard]:
    """Catch SIGINT and SIGTERM for the length of the block (a task in the main thread only)."""
    global _active
    if threading.current_thread() is not threading.main_thread() or _active is not None:
        yield _active or Guard()
        return
    _active = Guard()
    _active.install()
    try:
        yield _active
    finally:
        _active.uninstall()
        _active = None


def ignore_until_exit() -> None:
    """For a task that ends because of a signal: further ones are ignored while it closes."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def active() -> Guard | None:
    return _active


def check() -> None:
    """Raise Interrupted if a signal arrived (in the main thread, outside `deferred()`)."""
    if _active is not None:
        _active.check()


@contextmanager
def deferred() -> Iterator[None]:
    """A step that must run to its end: a signal that arrives meanwhile is raised at the next check."""
    if _active is None:
        yield
        return
    _active.holding += 1
    try:
        yield
    finally:
        _active.holding -= 1

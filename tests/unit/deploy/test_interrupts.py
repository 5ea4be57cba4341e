"""SIGINT and SIGTERM under deploy.interrupts: recorded by the handler, raised only at a check in
the main thread, held back inside deferred(), and stopping a wait on the hosts promptly."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from deploy import interrupts
from deploy.inventory import parse_inventory
from deploy.session import Session


def environment():
    text = "".join(
        f'[[environments.p.hosts]]\nname = "h{i}"\naddress = "127.0.0.{i}"\ndeploy_root = "/srv/h{i}"\n' for i in (2, 3)
    )
    return parse_inventory("[environments.p]\n" + text).environment("p")


def test_a_signal_is_raised_at_the_next_check_with_the_shell_status(capfd):
    with interrupts.guard():
        interrupts.check()  # nothing received: no-op
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(interrupts.Interrupted) as caught:
            interrupts.check()
    assert caught.value.exit_code == 130
    assert "interrupted by SIGINT" in capfd.readouterr().err
    assert interrupts.active() is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the previous handler is back


def test_deferred_holds_a_signal_until_the_step_ends_and_a_second_one_is_ignored(capfd):
    with interrupts.guard():
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            interrupts.check()  # inside the step: not raised
            os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(interrupts.Interrupted) as caught:
            interrupts.check()
    assert caught.value.exit_code == 143
    err = capfd.readouterr().err
    assert err.count("interrupted by SIGTERM") == 1 and "SIGTERM ignored" in err


def test_checks_outside_a_guard_or_in_a_worker_thread_never_raise():
    interrupts.check()
    with interrupts.guard() as guard:
        guard.received = signal.SIGINT
        raised: list[BaseException] = []

        def worker() -> None:
            try:
                interrupts.check()
            except BaseException as error:  # noqa: BLE001 (recorded, asserted below)
                raised.append(error)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=5)
        assert not raised
        guard.received = None


def test_a_wait_on_the_hosts_stops_promptly_on_a_signal():
    session = Session(environment())
    release = threading.Event()
    started = threading.Barrier(3, timeout=5)

    def blocked(remote) -> str:
        started.wait()
        release.wait(timeout=30)
        return remote.host.name

    def send_signal() -> None:
        started.wait()
        os.kill(os.getpid(), signal.SIGINT)

    try:
        with interrupts.guard():
            sender = threading.Thread(target=send_signal)
            sender.start()
            began = time.monotonic()
            with pytest.raises(interrupts.Interrupted):
                session.parallel(blocked)
            assert time.monotonic() - began < 5  # not the 30 s the hosts' step would take
            sender.join(timeout=5)
    finally:
        release.set()
    # Without a guard, the same call waits for every host and returns their results.
    assert session.parallel(lambda remote: remote.host.name) == ["h2", "h3"]

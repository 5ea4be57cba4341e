"""ProcessChain with real processes: every stage's exit status counts, not only the last one's."""

from __future__ import annotations

import pytest

from deploy.ops.backup.process import ProcessChain, StageFailed, describe_exit


def test_a_failing_first_stage_is_reported_even_when_the_last_succeeds():
    # `sh -c 'printf data; echo oops >&2; exit 3' | cat`: a shell pipeline would say 0.
    with ProcessChain(
        [["sh", "-c", "printf partial-data; echo 'dump broke' >&2; exit 3"], ["cat"]],
        {},
        feed_stdin=False,
        read_stdout=True,
    ) as chain:
        assert chain.stdout.read() == b"partial-data"
        with pytest.raises(StageFailed) as caught:
            chain.check()
    assert str(caught.value) == "sh exit status 3: dump broke"


def test_every_failed_stage_is_named_and_a_signal_is_spelled_out():
    with ProcessChain(
        [["sh", "-c", "kill -9 $$"], ["sh", "-c", "cat >/dev/null; exit 4"]], {}, feed_stdin=False, read_stdout=True
    ) as chain:
        assert chain.stdout.read() == b""
        with pytest.raises(StageFailed) as caught:
            chain.check()
    assert str(caught.value) == "sh killed by signal SIGKILL; sh exit status 4"


def test_feeding_stdin_through_stages_and_environment():
    with ProcessChain(
        [["tr", "a-z", "A-Z"], ["sh", "-c", 'cat; printf " $EXTRA"']],
        {"EXTRA": "ok"},
        feed_stdin=True,
        read_stdout=True,
    ) as chain:
        chain.stdin.write(b"hello")
        chain.stdin.close()
        assert chain.stdout.read() == b"HELLO ok"
        chain.check()


def test_describe_exit():
    assert describe_exit(0) == "exit status 0"
    assert describe_exit(-15) == "killed by signal SIGTERM"

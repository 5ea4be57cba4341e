"""The venv build's progress lines: when a build starts, then at most and at least every interval."""

from __future__ import annotations

import threading

from deploy.progress import BUILDING, VenvProgress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_build_is_told_every_interval_with_what_pip_is_at():
    said: list[str] = []
    clock = Clock()
    progress = VenvProgress(said.append, interval=3.0, clock=clock)
    progress.feed(BUILDING)
    assert said == ["building the venv (a new requirements.lock)"]
    for index, name in enumerate(["sanic==24.6.0", "tortoise-orm==1.0.0", "asyncpg==0.30.0"]):
        clock.now += 1.1
        progress.feed(f"Collecting {name} (from -r requirements.lock (line {index + 1}))")
    assert said[1:] == ["building the venv: collected 3 packages, 3s so far"]
    clock.now += 2.0
    progress.tick()  # pip silent (building a wheel): the ticker still speaks once the interval passed
    assert len(said) == 2
    clock.now += 1.5
    progress.tick()
    assert said[2] == "building the venv: collected 3 packages, 7s so far"
    clock.now += 3.0
    progress.feed("Installing collected packages: asyncpg, tortoise-orm, sanic")
    assert said[3] == "building the venv: installing 3 packages, 10s so far"
    progress.feed("Successfully installed asyncpg-0.30.0 sanic-24.6.0 tortoise-orm-1.0.0")
    clock.now += 10
    progress.tick()
    assert len(said) == 4  # finished: silent


def test_a_reused_venv_says_nothing():
    said: list[str] = []
    clock = Clock()
    progress = VenvProgress(said.append, interval=3.0, clock=clock)
    progress.feed("venv-reused")
    clock.now += 30
    progress.tick()
    assert said == []


def test_the_ticker_thread_speaks_while_pip_is_silent_and_stops_on_exit():
    said: list[str] = []
    spoke = threading.Event()

    def say(message: str) -> None:
        said.append(message)
        if len(said) >= 2:
            spoke.set()

    with VenvProgress(say, interval=0.05) as progress:
        progress.feed(BUILDING)
        assert spoke.wait(timeout=5), said  # bounded: the ticker speaks after 0.05 s of silence
    count = len(said)
    assert said[1].startswith("building the venv: creating it, ")
    assert not progress._ticker.is_alive() and len(said) == count

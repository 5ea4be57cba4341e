"""`make serve` / `invoke serve` as a newcomer breaks it: a busy port, and every way of stopping it
(Ctrl-C, `kill`, a closed terminal, a killed parent). Each stop must take the server and the
embedded PostgreSQL with it: nothing may live on under PID 1."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devtools.local_postgres import LocalPostgres, free_port
from tests.support.server_process import PROJECT_ROOT

pytestmark = pytest.mark.e2e

INVOKE = str(Path(sys.executable).parent / "invoke")
# `make -o`: take the venv as installed (the test runs inside it), never pip install.
MAKE_SERVE = ["make", "-s", "-o", ".venv/bin/.installed", "serve"]
# make's own error line: `make: ***`, or `make[1]: ***` when the suite itself runs under make.
MAKE_LINE = re.compile(r"make(\[\d+\])?: ")


@pytest.fixture(scope="module")
def local_dir():
    """One .local/ for the module (the cluster is created once, then started and stopped by each
    serve), inside the project as `make serve` makes it; never the developer's own."""
    path = PROJECT_ROOT / ".local" / f"test-lifecycle-{uuid.uuid4().hex[:8]}"
    yield path
    if (path / "postgres" / "data" / "postmaster.pid").exists():  # a failed test's leftover
        LocalPostgres(path / "postgres").stop(mode="immediate")
    shutil.rmtree(path, ignore_errors=True)


def serve_env(local_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "OAUTH_HASH_KEY")}
    return {**env, "CLICKNBACK_LOCAL_DIR": str(local_dir), "ENV_FILE": "/dev/null"}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_until(condition, what: str, timeout: float = 60.0, output: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{output.read_text() if output else ''}"
        time.sleep(0.1)  # poll interval; the bound is the deadline


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (Linux /proc children lists)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            tasks = Path(f"/proc/{current}/task").iterdir()
            children = [int(c) for task in tasks for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        found += children
        queue += children
    return found


class Serve:
    """One `invoke serve` (or `make serve`) run, its output in a file."""

    def __init__(self, argv: list[str], local_dir: Path, port: int, output: Path) -> None:
        self.port, self.output, self.local_dir = port, output, local_dir
        with output.open("wb") as sink:
            # A process group of its own, as a terminal's foreground job has.
            self.process = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                env=serve_env(local_dir),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5) as http:

            def ready() -> bool:
                assert self.process.poll() is None, self.output.read_text()
                try:
                    return http.get("/health/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, "serve never got ready", timeout=120, output=self.output)

    def server_pid(self) -> int:
        """The API server process: the one below serve that listens on the port."""
        for pid in descendants(self.process.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"server" in cmdline and str(self.port).encode() in cmdline:
                return pid
        raise AssertionError(f"no server process below {self.process.pid}")

    def postmaster_pid(self) -> int:
        return int((self.local_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def assert_everything_stopped(run: Serve, server: int, postmaster: int) -> None:
    wait_until(lambda: not alive(server), "the server lives on", output=run.output)
    wait_until(lambda: not alive(postmaster), "the embedded PostgreSQL lives on", output=run.output)
    assert not (run.local_dir / "postgres" / "data" / "postmaster.pid").exists()
    assert port_closed(run.port)


def test_serve_on_a_busy_port_exits_non_zero_with_one_line_naming_the_port(local_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for argv in ([INVOKE, "serve", "--port", str(port)], [*MAKE_SERVE, f"PORT={port}"]):
            result = subprocess.run(argv, cwd=PROJECT_ROOT, env=serve_env(local_dir), capture_output=True, text=True)
            assert result.returncode != 0, (argv, result.stdout, result.stderr)
            ours = [line for line in result.stderr.splitlines() if not MAKE_LINE.match(line)]
            assert ours == [
                f"[serve] port {port} on 127.0.0.1 is already in use: pick another with "
                "`make serve PORT=8300` (or `invoke serve --port 8300`)"
            ], result.stderr
            assert result.stdout == "" and "Ctrl-C" not in result.stderr
    assert not (local_dir / "postgres" / "data" / "postmaster.pid").exists(), "nothing started"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_each_stop_signal_to_invoke_serve_stops_the_server_and_postgresql(local_dir, tmp_path, stop):
    port = free_port()
    run = Serve([INVOKE, "serve", "--port", str(port)], local_dir, port, tmp_path / "serve.out")
    try:
        run.wait_ready()
        server, postmaster = run.server_pid(), run.postmaster_pid()
        run.process.send_signal(stop)
        assert run.process.wait(timeout=60) == 0, run.output.read_text()
        assert_everything_stopped(run, server, postmaster)
        assert "embedded PostgreSQL stopped" in run.output.read_text()
    finally:
        run.kill()


@pytest.mark.parametrize(
    "stop, to_group",
    [(signal.SIGTERM, False), (signal.SIGHUP, True), (signal.SIGINT, True), (signal.SIGKILL, False)],
    ids=["SIGTERM-kill", "SIGHUP-terminal-closed", "SIGINT-ctrl-c", "SIGKILL-kill"],
)
def test_each_stop_of_make_serve_stops_the_server_and_postgresql(local_dir, tmp_path, stop, to_group):
    """`kill` signals make alone: make passes SIGTERM on, and on SIGKILL serve sees its parent die.
    A terminal sends SIGHUP (closed) and SIGINT (Ctrl-C) to the whole foreground group; make alone
    waits for its children on those two, by GNU make's design."""
    port = free_port()
    run = Serve([*MAKE_SERVE, f"PORT={port}"], local_dir, port, tmp_path / "serve.out")
    try:
        run.wait_ready()
        server, postmaster = run.server_pid(), run.postmaster_pid()
        if to_group:
            os.killpg(run.process.pid, stop)
        else:
            run.process.send_signal(stop)
        run.process.wait(timeout=60)
        assert_everything_stopped(run, server, postmaster)
    finally:
        run.kill()


def test_a_server_whose_serve_is_killed_does_not_live_on(local_dir, tmp_path):
    port = free_port()
    run = Serve([INVOKE, "serve", "--port", str(port)], local_dir, port, tmp_path / "serve.out")
    try:
        run.wait_ready()
        server = run.server_pid()
        run.process.send_signal(signal.SIGKILL)  # no clean-up of its own can run
        run.process.wait(timeout=10)
        wait_until(lambda: not alive(server), "the server outlived its killed parent")
        assert port_closed(port)
    finally:
        run.kill()
    # The next serve adopts the database the killed one left running, and stops it when it ends.
    again = Serve([INVOKE, "serve", "--port", str(port)], local_dir, port, tmp_path / "again.out")
    try:
        again.wait_ready()
        server, postmaster = again.server_pid(), again.postmaster_pid()
        again.process.send_signal(signal.SIGTERM)
        assert again.process.wait(timeout=60) == 0, again.output.read_text()
        assert_everything_stopped(again, server, postmaster)
    finally:
        again.kill()


def test_a_second_serve_leaves_the_first_ones_database_running(local_dir, tmp_path):
    """Two terminals, two ports, one .local/: stopping the second must not take the first's database."""
    first_port, second_port = free_port(), free_port()
    first = Serve([INVOKE, "serve", "--port", str(first_port)], local_dir, first_port, tmp_path / "first.out")
    second = None
    try:
        first.wait_ready()
        second = Serve([INVOKE, "serve", "--port", str(second_port)], local_dir, second_port, tmp_path / "second.out")
        second.wait_ready()
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(timeout=60) == 0, second.output.read_text()
        assert "embedded PostgreSQL stopped" not in second.output.read_text()
        with httpx.Client(base_url=f"http://127.0.0.1:{first_port}", timeout=5) as http:
            assert http.get("/health/ready").status_code == 200
        server, postmaster = first.server_pid(), first.postmaster_pid()
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=60) == 0, first.output.read_text()
        assert_everything_stopped(first, server, postmaster)
    finally:
        first.kill()
        if second is not None:
            second.kill()

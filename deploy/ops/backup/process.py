"""Running a chain of processes (pg_dump | zstd, zstd -d | pg_restore) with every exit status checked.

A shell pipeline reports only its last stage, so a dying pg_dump would look like a short but valid
dump. Here each stage is its own Popen, each stderr goes to its own temporary file (never a pipe
nobody reads), and check() names every stage that failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO


class StageFailed(RuntimeError):
    """At least one stage exited non-zero or was killed."""


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class ProcessChain:
    """stage[0] | stage[1] | ... ; the caller feeds `stdin` and/or drains `stdout` when asked to."""

    def __init__(self, commands: list[list[str]], env: dict[str, str], feed_stdin: bool, read_stdout: bool) -> None:
        self.commands = commands
        self.processes: list[subprocess.Popen] = []
        self._stderr_files: list[IO[bytes]] = []
        previous_stdout = None
        try:
            for index, argv in enumerate(commands):
                first, last = index == 0, index == len(commands) - 1
                stderr_file = tempfile.TemporaryFile(prefix="clicknback-stage-")
                self._stderr_files.append(stderr_file)
                process = subprocess.Popen(
                    argv,
                    stdin=(subprocess.PIPE if feed_stdin else subprocess.DEVNULL) if first else previous_stdout,
                    stdout=(subprocess.PIPE if read_stdout else subprocess.DEVNULL) if last else subprocess.PIPE,
                    stderr=stderr_file,
                    env={**os.environ, **env},
                    cwd="/",
                )
                if previous_stdout is not None:
                    previous_stdout.close()  # the next stage owns it now: a dead reader means SIGPIPE upstream
                previous_stdout = process.stdout
                self.processes.append(process)
        except BaseException:
            self.kill()
            raise

    @property
    def stdin(self) -> IO[bytes]:
        return self.processes[0].stdin  # type: ignore[return-value]

    @property
    def stdout(self) -> IO[bytes]:
        return self.processes[-1].stdout  # type: ignore[return-value]

    def stage_name(self, index: int) -> str:
        return Path(self.commands[index][0]).name

    def _stderr_tail(self, index: int, limit: int = 800) -> str:
        handle = self._stderr_files[index]
        handle.seek(0)
        text = handle.read().decode(errors="replace").strip()
        return text[-limit:]

    def check(self, timeout: float = 600) -> None:
        """Wait for every stage; raise StageFailed naming each failed stage and its error output."""
        if self.processes and self.processes[0].stdin and not self.processes[0].stdin.closed:
            self.processes[0].stdin.close()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        failures = []
        for index, process in enumerate(self.processes):
            if process.returncode != 0:
                tail = self._stderr_tail(index)
                failures.append(
                    f"{self.stage_name(index)} {describe_exit(process.returncode)}" + (f": {tail}" if tail else "")
                )
        if failures:
            raise StageFailed("; ".join(failures))

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        self.kill()
        for process in self.processes:
            for stream in (process.stdin, process.stdout):
                if stream is not None and not stream.closed:
                    try:
                        stream.close()
                    except OSError:
                        pass
        for handle in self._stderr_files:
            handle.close()

    def __enter__(self) -> ProcessChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """`\\r`-updated byte counter on stderr, only when a person is watching (stderr is a TTY)."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._last_print = 0.0

    def update(self, done_bytes: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_print < 0.5:
            return
        self._last_print = now
        rate = done_bytes / max(now - self.started, 1e-6) / 2**20
        sys.stderr.write(f"\r{self.label}: {done_bytes / 2**20:8.1f} MiB  {rate:6.1f} MiB/s")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._last_print:
            sys.stderr.write("\n")
            sys.stderr.flush()

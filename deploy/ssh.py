"""SSH sessions to the hosts: Fabric connections that verify host keys, and a thin command runner.

Fabric's default accepts any host key (AutoAddPolicy). Here only the known_hosts file named by
the inventory counts: an unknown key or a changed key refuses to connect, and the error says how
to trust the host after checking its fingerprint out of band.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import paramiko
from fabric import Config, Connection
from invoke.exceptions import ThreadException

from deploy import dryrun
from deploy.inventory import Host

# paramiko logs its transport thread's failures (a greeting that never came, a dropped connection)
# with a traceback; with no handler, Python prints them on stderr. Every such failure reaches the
# operator as one ConnectionFailed line instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class HostKeyError(RuntimeError):
    """The host's key is not in known_hosts, or differs from the one recorded there."""


class ConnectionFailed(RuntimeError):
    """SSH to the host failed (refused, unreachable, name unknown, timed out, login refused,
    connection lost); the message is one line naming the host and the cause."""

    def __init__(self, host: Host, cause: str):
        self.host, self.cause = host, cause
        super().__init__(f"[{host.name}] SSH to {host.address} port {host.ssh_port} as {host.ssh_user} failed: {cause}")


# How paramiko says the server never greeted (sent no SSH banner): connect() gives up at its timeout
# with "No existing session", or its transport thread reports the banner it could not read, with
# the reason appended when it was not the wait (a reset).
NO_SESSION = "No existing session"
NO_BANNER = "Error reading SSH protocol banner"


def connection_failure_cause(exc: BaseException, timeout: float | None = None, waited: float | None = None) -> str:
    """A short, secret-free description of why an SSH connection failed (`waited`: how long the
    attempt took, which tells a greeting that never came from a connection closed before it)."""
    if isinstance(exc, paramiko.AuthenticationException):
        return "authentication failed (the key was refused: check identity_file and the user's authorized_keys)"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        if codes <= {errno.ECONNREFUSED}:
            return "connection refused (is sshd running on that port? is the port right?)"
        reasons = sorted({os.strerror(code) if isinstance(code, int) else "unreachable" for code in codes})
        return ", ".join(reasons).lower()
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the address ({exc.strerror})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out{f' after {timeout:g}s' if timeout else ''} (host down, or a firewall drops the packets)"
    if isinstance(exc, EOFError):
        return "the connection was closed by the host"
    if isinstance(exc, paramiko.SSHException) and str(exc).startswith((NO_SESSION, NO_BANNER)):
        reason = str(exc)[len(NO_BANNER) :].strip() if str(exc).startswith(NO_BANNER) else ""
        if reason or (waited is not None and timeout and waited < timeout - 1):
            return (
                f"the host closed the connection before its SSH greeting{f' ({reason})' if reason else ''} "
                f"(sshd refusing new connections, e.g. MaxStartups, or not an SSH port)"
            )
        return (
            f"timed out{f' after {timeout:g}s' if timeout else ''} waiting for the SSH greeting (the port "
            f"accepts connections but nothing answers as an SSH server: is it sshd's port? is the host overloaded?)"
        )
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class RemoteCommandError(RuntimeError):
    """A remote command exited non-zero; carries its exit status and output for the report."""

    def __init__(self, host: Host, command: str, exited: int, stdout: str, stderr: str):
        self.host, self.command, self.exited = host, command, exited
        self.stdout, self.stderr = stdout, stderr
        tail = (stderr.strip() or stdout.strip()).splitlines()[-15:]
        super().__init__(f"[{host.name}] command failed (exit {exited}): {_shorten(command)}\n" + "\n".join(tail))


def _shorten(command: str, limit: int = 300) -> str:
    return command if len(command) <= limit else command[:limit] + " ..."


def host_key_alias(host: Host) -> str:
    """How known_hosts names the host: `addr` on port 22, `[addr]:port` otherwise."""
    return host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"


def trust_instructions(host: Host) -> str:
    known_hosts = host.known_hosts
    return (
        f"check the host's fingerprint out of band (e.g. on the provider's console: "
        f"ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then trust it with:\n"
        f"  ssh-keyscan -p {host.ssh_port} -t ed25519 {host.address} >> {known_hosts}"
    )


def connect(host: Host, connect_timeout: int = 10) -> Connection:
    """An open Fabric connection whose host key was verified against the inventory's known_hosts."""
    config = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}})
    connect_kwargs: dict = {
        "look_for_keys": not host.identity_file,
        "allow_agent": not host.identity_file,
        # The TCP connect and the wait for the server's greeting share one bound (paramiko's own
        # greeting wait is 15 s, longer than the connect it belongs to).
        "banner_timeout": connect_timeout,
    }
    if host.identity_file:
        connect_kwargs["key_filename"] = str(Path(host.identity_file).expanduser())
    connection = Connection(
        host.address,
        user=host.ssh_user,
        port=host.ssh_port,
        config=config,
        connect_kwargs=connect_kwargs,
        connect_timeout=connect_timeout,
    )
    known_hosts = Path(host.known_hosts).expanduser()
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if known_hosts.exists():
        connection.client.load_host_keys(str(known_hosts))
    started = time.monotonic()
    try:
        connection.open()
    except paramiko.BadHostKeyException:
        raise HostKeyError(
            f"[{host.name}] HOST KEY CHANGED for {host_key_alias(host)} (recorded in {known_hosts}): "
            f"refusing to connect. If the host was really rebuilt, remove the old key with\n"
            f"  ssh-keygen -R '{host_key_alias(host)}' -f {known_hosts}\nand {trust_instructions(host)}"
        ) from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostKeyError(
                f"[{host.name}] unknown host key for {host_key_alias(host)} (not in {known_hosts}): "
                f"refusing to connect; {trust_instructions(host)}"
            ) from None
        connection.close()  # a handshake still waiting for a greeting stops here
        cause = connection_failure_cause(exc, connect_timeout, time.monotonic() - started)
        raise ConnectionFailed(host, cause) from None
    except (OSError, EOFError) as exc:  # refused, unreachable, DNS, timeout (socket.timeout is an OSError)
        raise ConnectionFailed(host, connection_failure_cause(exc, connect_timeout)) from None
    return connection


@dataclass
class Result:
    stdout: str
    stderr: str
    exited: int

    @property
    def ok(self) -> bool:
        return self.exited == 0


_STARTED = time.monotonic()
# CLICKNBACK_DEPLOY_TRACE=1 prints every remote round trip with its duration (where the seconds go).
TRACE = os.environ.get("CLICKNBACK_DEPLOY_TRACE", "") not in ("", "0")


class Remote:
    """Runs built commands on one host; in dry-run, prints every command that changes something.

    `query` commands only read state, so they run even in dry-run: that is what makes the printed
    plan exact (it knows the current release, the lock holder, the crontab).
    """

    _print_lock = threading.Lock()

    def __init__(self, host: Host, dry_run: bool = False, out: IO[str] | None = None, verbose: bool = False):
        self.host, self.dry_run, self.verbose = host, dry_run, verbose
        self.out = out or sys.stdout
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            started = time.monotonic()
            self._connection = connect(self.host)
            if TRACE:
                self.say(f"trace: ssh connect {time.monotonic() - started:.3f}s")
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def say(self, message: str) -> None:
        with self._print_lock:
            elapsed = time.monotonic() - _STARTED
            print(f"[{self.host.name} +{elapsed:.1f}s] {message}", file=self.out, flush=True)

    def query(self, command: str, check: bool = True) -> Result:
        return self._execute(command, check)

    def run(
        self,
        command: str,
        check: bool = True,
        what: str | None = None,
        key: str | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Result:
        """Run a command that changes the host. A dry run prints it instead: `what` says the step in
        words and `key` (default: the command folded to one line) the part that matters; with
        verbose, the exact command follows (deploy/dryrun.py). `on_line` is given each output line
        as it comes (a long step's progress); the Result still holds the whole output."""
        if self.dry_run:
            for message in dryrun.render(command, what, self.verbose, key):
                self.say(message)
            return Result("", "", 0)
        return self._execute(command, check, on_line)

    def put_bytes(self, data: bytes, remote_path: str) -> None:
        """Upload bytes through SFTP (binary-safe, unlike command output, which is decoded text)."""
        if self.dry_run:
            self.say(f"would upload {len(data)} bytes to {remote_path}")
            return
        self.connection.put(io.BytesIO(data), remote_path, preserve_mode=False)

    def _execute(self, command: str, check: bool, on_line: Callable[[str], None] | None = None) -> Result:
        connection = self.connection
        started = time.monotonic()
        streams = {}
        if on_line is not None:
            lines = _LineWriter(on_line)
            streams = {"out_stream": lines, "err_stream": lines}
        try:
            result = connection.run(command, hide=True, warn=True, in_stream=False, **streams)
        except (paramiko.SSHException, OSError, EOFError) as exc:  # the connection dropped midway
            raise ConnectionFailed(self.host, "connection lost: " + connection_failure_cause(exc)) from None
        if TRACE:
            self.say(f"trace: {time.monotonic() - started:.3f}s {_shorten(command, 90)}")
        outcome = Result(result.stdout, result.stderr, result.exited)
        if check and not outcome.ok:
            raise RemoteCommandError(self.host, command, outcome.exited, outcome.stdout, outcome.stderr)
        return outcome

    def stream(self, command: str) -> int:
        """Run a long command, printing its output line by line with the host prefix (logs -f)."""
        writer = _PrefixWriter(self)
        connection = self.connection
        try:
            result = connection.run(
                command, hide=True, warn=True, in_stream=False, out_stream=writer, err_stream=writer
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectionFailed(self.host, "connection lost: " + connection_failure_cause(exc)) from None
        except ThreadException as exc:  # the output was written from invoke's reader threads
            if any(issubclass(wrapped.type, BrokenPipeError) for wrapped in exc.exceptions):
                raise BrokenPipeError(errno.EPIPE, "the reader of the output has gone") from None
            raise
        writer.flush_rest()
        return result.exited


class _LineWriter(io.TextIOBase):
    """Hands each complete line written to it to `on_line` (invoke's reader threads write chunks)."""

    def __init__(self, on_line: Callable[[str], None]):
        self.on_line, self.buffer = on_line, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.on_line(line)
        return len(text)


class _PrefixWriter(io.TextIOBase):
    def __init__(self, remote: Remote):
        self.remote, self.buffer = remote, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.remote.say(line)
        return len(text)

    def flush_rest(self) -> None:
        if self.buffer:
            self.remote.say(self.buffer)
            self.buffer = ""

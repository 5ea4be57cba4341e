"""The hosts of one environment driven at once (one SSH Remote each), and the reads of a host's state."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import IO, Generic, TypeVar

from deploy import commands as cmd
from deploy import interrupts, ledger
from deploy.commands import Layout
from deploy.errors import DeployError
from deploy.inventory import Environment
from deploy.ssh import ConnectionFailed, HostKeyError, Remote, RemoteCommandError

T = TypeVar("T")
INTERRUPT_POLL_SECONDS = 0.1


@dataclass
class Session:
    """The hosts of one environment, one Remote each, and the output stream for the operator."""

    environment: Environment
    dry_run: bool = False
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    verbose: bool = False  # a dry run prints the exact commands, not one line per step
    remotes: list[Remote] = field(init=False)

    def __post_init__(self) -> None:
        self.remotes = [Remote(host, self.dry_run, self.out, self.verbose) for host in self.environment.hosts]

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def parallel(self, action: Callable[[Remote], T], remotes: list[Remote] | None = None) -> list[T]:
        """Run `action` on every host (or `remotes`) at once; re-raise the first failure after all finished."""
        remotes = self.remotes if remotes is None else remotes
        guard = interrupts.active()
        if len(remotes) == 1 and guard is None:
            return [action(remotes[0])]
        pool = ThreadPoolExecutor(max_workers=max(1, len(remotes)))
        try:
            futures = [pool.submit(action, remote) for remote in remotes]
            # Under an interrupt guard the wait is in slices, so a signal stops it promptly; the
            # hosts' commands run on (the caller's undo stops what must not go on).
            while wait(futures, timeout=INTERRUPT_POLL_SECONDS if guard else None).not_done:
                interrupts.check()
            interrupts.check()
        finally:
            pool.shutdown(wait=False)
        errors = [error for f in futures if (error := f.exception()) is not None]
        if errors:
            raise errors[0]
        return [f.result() for f in futures]

    def each(self, action: Callable[[Remote], T]) -> list[HostResult[T]]:
        """Run `action` on every host at once and keep every host's outcome, failed or not.

        For the read-only reports: a host that cannot be reached (or whose read fails) is one
        line in the report, and the others are still shown. Unexpected errors still propagate.
        """

        def one(remote: Remote) -> HostResult[T]:
            try:
                return HostResult(remote, value=action(remote))
            except (ConnectionFailed, HostKeyError, RemoteCommandError, DeployError) as error:
                return HostResult(remote, error=error)

        return self.parallel(one)

    def connect(self, check: Callable[[Remote], object] | None = None) -> None:
        """Open every host's SSH connection at once (each is then reused for the whole task).

        A task that changes hosts calls this before its first change, so one unreachable host
        stops it while nothing has changed anywhere; `check` (read-only) also runs on every host
        first, for what a bare login does not prove (e.g. a writable deploy root).
        """
        self.parallel(lambda remote: remote.connection)
        if check is not None:
            self.parallel(check)

    def as_user(self, ssh_user: str) -> Session:
        """The same hosts logged into as another user (the admin of the one-time root setup)."""
        hosts = tuple(replace(host, ssh_user=ssh_user) for host in self.environment.hosts)
        return Session(replace(self.environment, hosts=hosts), self.dry_run, self.out, self.verbose)

    def close(self) -> None:
        for remote in self.remotes:
            remote.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class HostResult(Generic[T]):
    """One host's outcome in Session.each: its value, or the error that stopped it."""

    remote: Remote
    value: T | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def problem(self) -> str:
        """The error without the host prefix (the report already names the host): one line, except
        a host key problem, whose lines say how to check and trust the key."""
        text = str(self.error).strip() if self.error else ""
        if not isinstance(self.error, HostKeyError):
            text = text.splitlines()[0] if text else ""
        prefix = f"[{self.remote.host.name}] "
        return text[len(prefix) :] if text.startswith(prefix) else text

    @property
    def status(self) -> str:
        return "UNREACHABLE" if isinstance(self.error, (ConnectionFailed, HostKeyError)) else "FAILED"


def layout(remote: Remote) -> Layout:
    return Layout(remote.host.deploy_root)


def host_ops_command(deploy_root: str, *args: str) -> str:
    """The ops CLI as an operator types it in a shell on the host (there is no `clicknback-ops`
    executable there): the current release's code with the host's secrets file."""
    lay = Layout(deploy_root)
    return (
        f"cd {cmd.q(lay.current)} && ENV_FILE={cmd.q(lay.env_file)} ./.venv/bin/python -m {cmd.OPS_CLI} "
        + " ".join(cmd.q(a) for a in args)
    ).rstrip()


def read_state(remote: Remote) -> cmd.HostState:
    """Everything the tasks need to know about a host, in one round trip."""
    return cmd.parse_state(remote.query(cmd.read_state_command(layout(remote))).stdout)


def current_release(remote: Remote) -> str | None:
    return read_state(remote).current


def release_ids(remote: Remote) -> list[str]:
    return read_state(remote).releases


def ledger_entries(state: cmd.HostState) -> list[ledger.LedgerEntry]:
    return ledger.parse_ledger(state.ledger_text)


def read_ledger(remote: Remote) -> list[ledger.LedgerEntry]:
    return ledger_entries(read_state(remote))


def host_live_ports(remote: Remote, state: cmd.HostState) -> tuple[int, ...]:
    return cmd.parse_live_ports(state.live_ports_text, remote.host)


def live_ports(remote: Remote) -> tuple[int, ...]:
    return host_live_ports(remote, read_state(remote))


def deployed_release(remote: Remote) -> str:
    """The host's current release; DeployError when nothing is deployed yet."""
    current = current_release(remote)
    if not current:
        raise DeployError(f"[{remote.host.name}] nothing is deployed yet: deploy a release first")
    return current


def current_ops_command(remote: Remote, *args: str) -> str:
    """The ops CLI of the host's current release, run with `args`."""
    return cmd.ops_command(layout(remote), deployed_release(remote), *args)

"""Deploy, rollback and provision orchestration: the thin layer that RUNS what deploy.commands BUILDS.

A deploy: take the lock on every host (in inventory order, so two concurrent deploys never each
hold half), upload the tag's `git archive` to every host in parallel, link its venv (reused by
lock-file hash), migrate once on the first host, then switch (deploy and rollback share it):

1. on every host in parallel: point `current` at the release and start it on each instance's
   standby port beside the live one, gated on /health/ready;
2. only when every gate on every host passed: host by host, flip nginx to the new instances and
   verify readiness through nginx;
3. on every host in parallel: stop the old instances in the background (they drain).

The old instances serve until step 3, so any failure before it puts every host back at once
(nginx back to the old instances where it flipped, `current` back, new instances stopped) and
the release is marked bad.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Generic, TypeVar

from deploy import commands as cmd
from deploy import ledger
from deploy.commands import Layout
from deploy.inventory import Environment, Host
from deploy.ssh import ConnectionFailed, HostKeyError, Remote, RemoteCommandError

T = TypeVar("T")
LOG_LINES_ON_FAILURE = 30
DETAIL_LIMIT = 600  # characters of a ledger entry's detail: it is shown in reports, keep it readable


class DeployError(RuntimeError):
    """The operation stopped; the message says why and what state the hosts are in."""


class LockHeldError(DeployError):
    """Another operation holds the deploy lock."""


class GateFailed(DeployError):
    """New instances did not become ready; carries the failing check and their last log lines."""

    def __init__(
        self, host: Host, ports: list[int], check: str, log_tails: dict[int, str], states: dict[int, str] | None = None
    ):
        self.host, self.ports, self.check = host, ports, check
        self.log_tails, self.states = log_tails, states or {}
        listing = ", ".join(host.instance_label(port) for port in ports)

        def state(port: int) -> str:
            known = supervisor_state(self.states.get(port, ""))
            return f" (supervisor: {known})" if known else ""

        tails = "".join(
            f"\n--- last {LOG_LINES_ON_FAILURE} log lines of {cmd.program_name(port)}{state(port)} ---\n{tail.rstrip()}"
            for port, tail in log_tails.items()
        )
        super().__init__(f"[{host.name}] {listing} failed the health gate:\n{check.strip()}{tails}")


# -- local git -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalRelease:
    tag: str
    commit: str
    archive: bytes
    lock_hash: str


def git_bytes(repo: Path, *args: str) -> bytes:
    """A git command's raw output (an archive, a file's bytes); DeployError with git's message on failure."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    if result.returncode != 0:
        raise DeployError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def git(repo: Path, *args: str) -> str:
    return git_bytes(repo, *args).decode().strip()


def resolve_tag(repo: Path, tag: str) -> str:
    """The commit a tag names; refuses a tag that does not exist (never a branch or a sha)."""
    try:
        cmd.check_tag(tag)
    except ValueError as error:
        raise DeployError(str(error)) from None
    check_repository(repo)
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    except DeployError:
        raise DeployError(missing_tag_message(tag, repo, ref_kind(repo, tag))) from None


def ref_kind(repo: Path, name: str) -> str | None:
    """What `name` is in the repository when it is not a tag: a branch, HEAD, a commit, or nothing."""
    if name == "HEAD" or name.endswith("_HEAD"):
        return "HEAD"
    for prefix, kind in ((f"refs/heads/{name}", "branch"), (f"refs/remotes/{name}", "remote branch")):
        if subprocess.run(["git", "-C", str(repo), "show-ref", "--verify", "--quiet", prefix]).returncode == 0:
            return kind
    found = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], capture_output=True
    )
    return "commit" if found.returncode == 0 else None


def missing_tag_message(tag: str, repo: Path, kind: str | None) -> str:
    """Why a --tag is refused and what to type instead. A branch or HEAD moves, so a deploy of it
    would not name fixed code: the advice is to tag the commit with a release-style name."""
    if kind is None:
        return (
            f"tag {tag!r} does not exist in {repo} (create it on the commit to release with "
            f"`git tag {tag} <commit>`, or fetch tags with `git fetch --tags`)"
        )
    what = {
        "HEAD": f"{tag!r} is HEAD (a moving pointer), not a tag",
        "branch": f"{tag!r} is a branch, not a tag",
        "remote branch": f"{tag!r} is a remote branch, not a tag",
        "commit": f"{tag!r} names a commit, not a tag",
    }[kind]
    return (
        f"{what}: deploys take a tag, so a release always names the same code. Tag the commit "
        f"with a release-style name, e.g. `git tag v1.2.3 {tag}`, then `invoke deploy --tag v1.2.3`"
    )


def check_repository(repo: Path) -> None:
    """Refuse a --repo that is missing or not a git work tree (before blaming the tag)."""
    if not repo.exists():
        raise DeployError(f"--repo {repo}: no such directory")
    if not repo.is_dir():
        raise DeployError(f"--repo {repo}: not a directory")
    try:
        git(repo, "rev-parse", "--git-dir")
    except DeployError:
        raise DeployError(f"--repo {repo}: not a git repository") from None


def read_env_file(path: Path) -> bytes:
    """The --env-file's bytes, or one line saying why it cannot be read (before any SSH)."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise DeployError(f"--env-file {path}: {(error.strerror or str(error)).lower()}") from None


def local_release(repo: Path, tag: str) -> LocalRelease:
    commit = resolve_tag(repo, tag)
    archive = git_bytes(repo, "archive", "--format=tar.gz", tag)
    try:
        lock_file = git_bytes(repo, "show", f"{tag}:requirements.lock")
    except DeployError:
        raise DeployError(f"tag {tag!r} has no requirements.lock at the repository root") from None
    return LocalRelease(tag, commit, archive, hashlib.sha256(lock_file).hexdigest())


def utc_now() -> datetime:
    return datetime.now(UTC)


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


# -- sessions over several hosts -------------------------------------------------------------


@dataclass
class Session:
    """The hosts of one environment, one Remote each, and the output stream for the operator."""

    environment: Environment
    dry_run: bool = False
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    remotes: list[Remote] = field(init=False)

    def __post_init__(self) -> None:
        self.remotes = [Remote(host, self.dry_run, self.out) for host in self.environment.hosts]

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def parallel(self, action: Callable[[Remote], T], remotes: list[Remote] | None = None) -> list[T]:
        """Run `action` on every host (or `remotes`) at once; re-raise the first failure after all finished."""
        remotes = self.remotes if remotes is None else remotes
        if len(remotes) == 1:
            return [action(remotes[0])]
        with ThreadPoolExecutor(max_workers=max(1, len(remotes))) as pool:
            futures = [pool.submit(action, remote) for remote in remotes]
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

    def connect(self) -> None:
        """Open every host's SSH connection at once (each is then reused for the whole task)."""
        self.parallel(lambda remote: remote.connection)

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


# -- lock ------------------------------------------------------------------------------------


@dataclass
class Lock:
    session: Session
    operation: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    held: list[Remote] = field(default_factory=list)

    def holder(self) -> str:
        return json.dumps(
            {
                "holder": operator(),
                "operation": self.operation,
                "since": utc_now().isoformat(timespec="seconds"),
                "token": self.token,
            },
            sort_keys=True,
        )

    def __enter__(self) -> Lock:
        holder = self.holder()
        for remote in self.session.remotes:  # in order: two deploys never each hold half
            result = remote.run(cmd.lock_acquire_command(layout(remote), holder), check=False)
            if result.exited == cmd.LOCK_HELD_EXIT:
                self.release()
                raise LockHeldError(
                    f"[{remote.host.name}] the deploy lock is held: {result.stdout.strip()}\n"
                    f"If that operation is really gone, free it with `invoke lock --release`."
                )
            if not result.ok:
                self.release()
                raise RemoteCommandError(remote.host, "lock", result.exited, result.stdout, result.stderr)
            self.held.append(remote)
        return self

    def release(self) -> None:
        held, self.held = self.held, []
        if held:  # any order will do: only taking it must go host by host
            self.session.parallel(
                lambda remote: remote.run(cmd.lock_release_command(layout(remote), self.token), check=False), held
            )

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the health-gated switch -----------------------------------------------------------------


@dataclass
class HostSwitch:
    """One host's part of a switch: which release replaces which, on which ports."""

    remote: Remote
    target: str
    old_release: str | None
    old_ports: tuple[int, ...]
    new_ports: tuple[int, ...]
    flipped: bool = False

    @classmethod
    def plan(cls, remote: Remote, state: cmd.HostState, target: str) -> HostSwitch:
        old = host_live_ports(remote, state)
        return cls(remote, target, state.current, old, tuple(remote.host.partner_port(p) for p in old))


def _phases(output: str) -> str:
    return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in cmd.phase_durations(output))


def prepare(switch: HostSwitch) -> None:
    """Point `current` at the target and bring it up on the standby ports, gated (nginx untouched).

    Raises GateFailed, naming the failing check and the last log lines of the failed instances.
    """
    remote, host, lay = switch.remote, switch.remote.host, layout(switch.remote)
    remote.say(f"current -> {switch.target}; starting {', '.join(cmd.program_name(p) for p in switch.new_ports)}")
    gate = remote.run(cmd.prepare_switch_command(lay, host, switch.target, switch.new_ports), check=False)
    if not gate.ok:
        output = gate.stdout + gate.stderr
        failed = cmd.failed_ports(output, host, switch.new_ports)
        tails = {
            port: remote.query(cmd.instance_output_tail_command(lay, port, LOG_LINES_ON_FAILURE)).stdout
            for port in failed
        }
        states = {port: remote.query(program_status_command(lay, port), check=False).stdout for port in failed}
        raise GateFailed(
            host,
            failed,
            "\n".join(line for line in output.splitlines() if not line.startswith("@phase ")),
            tails,
            states,
        )
    if not remote.dry_run:
        remote.say(
            f"{switch.target} ready on {', '.join(host.instance_label(p) for p in switch.new_ports)}"
            f" ({_phases(gate.stdout)})"
        )


def flip(switch: HostSwitch) -> None:
    """Send nginx's traffic to the new instances and verify readiness through nginx.

    On failure the command itself has put nginx back on the old instances; raises GateFailed.
    """
    remote, host = switch.remote, switch.remote.host
    result = remote.run(cmd.flip_command(layout(remote), host, switch.new_ports, switch.old_ports), check=False)
    if not result.ok:
        output = "\n".join(
            line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("@phase ")
        )
        raise GateFailed(host, list(switch.new_ports), f"post-switch check through nginx failed:\n{output}", {})
    switch.flipped = True
    if not remote.dry_run:
        remote.say(
            f"nginx -> {', '.join(host.instance_label(p) for p in switch.new_ports)},"
            f" verified through nginx ({_phases(result.stdout)})"
        )


def undo(switch: HostSwitch) -> None:
    """Put a host back as it was: nginx on the old instances (they never stopped), `current` on
    the old release, the new instances stopped."""
    remote, lay = switch.remote, layout(switch.remote)
    if switch.flipped:
        remote.run(cmd.unflip_command(lay, remote.host, switch.old_ports))
    if switch.old_release is not None:
        remote.run(cmd.switch_current_command(lay, switch.old_release))
    remote.run(cmd.drain_in_background_command(lay, switch.new_ports, "switch undone"), check=False)
    back = f"current -> {switch.old_release}" if switch.old_release else "no previous release to return to"
    remote.say(f"back on the old instances ({back}); new instances stopping")


def drain_old(switch: HostSwitch) -> None:
    remote = switch.remote
    remote.run(cmd.drain_in_background_command(layout(remote), switch.old_ports, f"replaced by {switch.target}"))


def switch_all(session: Session, states: dict[str, cmd.HostState], targets: dict[str, str]) -> list[GateFailed]:
    """Prepare every host in parallel, flip host by host, drain; returns the failures (none = done).

    Any failure before the drain puts every host back (the old instances served throughout).
    """
    started = time.monotonic()
    switches = [HostSwitch.plan(r, states[r.host.name], targets[r.host.name]) for r in session.remotes]
    by_remote = {id(s.remote): s for s in switches}

    def prepare_one(remote: Remote) -> GateFailed | None:
        try:
            prepare(by_remote[id(remote)])
        except GateFailed as failure:
            return failure
        return None

    try:
        failures = [f for f in session.parallel(prepare_one) if f is not None]
        if not failures:
            for switch in switches:
                try:
                    flip(switch)
                except GateFailed as failure:
                    failures.append(failure)
                    break
    except Exception:
        # An SSH failure midway: still try to leave every host on its old instances.
        session.say("the switch broke off: putting every host back on its old instances")
        for switch in switches:
            try:
                undo(switch)
            except Exception as error:  # report and go on: the other hosts still need it
                session.say(f"[{switch.remote.host.name}] could not put it back: {error}")
        raise
    if failures:
        for failed in failures:
            session.say(str(failed))
        session.say("putting every host back on its old instances")
        session.parallel(lambda remote: undo(by_remote[id(remote)]))
        return failures
    if not session.dry_run:
        session.say(
            f"healthy: {len(switches)} host(s) serve the new instances,"
            f" {time.monotonic() - started:.1f}s after the switch began; old instances draining"
        )
    session.parallel(lambda remote: drain_old(by_remote[id(remote)]))
    return []


def switch_host(remote: Remote, rel_id: str) -> None:
    """The same gated switch on one host alone (the restore task restarts the app with it)."""
    switch = HostSwitch.plan(remote, read_state(remote), rel_id)
    try:
        prepare(switch)
        flip(switch)
    except GateFailed:
        undo(switch)
        raise
    drain_old(switch)


def program_status_command(lay: Layout, port: int) -> str:
    """supervisorctl's status line of one instance (`app-8001  FATAL  Exited too quickly ...`)."""
    return f"{cmd.supervisorctl_command(lay, 'status', cmd.program_name(port))} 2>&1 || true"


# A Python exception line (`SyntaxError: invalid syntax`, `asyncpg.exceptions.X: ...`, `KeyError`).
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Fault)\b:?")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]*@")


def _log_record_summary(record: dict) -> str:
    parts = [str(record[key]) for key in ("level", "event", "message", "error", "exception") if record.get(key)]
    return " ".join(parts)


def log_cause(tail: str) -> str:
    """The line of an instance's last output that says why it failed: the last exception line of a
    traceback, else the last JSON log line at error level, else the last plain (not JSON, not
    indented) line, else the last JSON line; JSON lines as `level event message`, never raw."""
    lines = [line.rstrip() for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line.strip()
    records: list[dict] = []
    plain: list[str] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif not line[:1].isspace():
            plain.append(line.strip())
    errors = [r for r in records if str(r.get("level", "")).lower() in ("error", "critical", "fatal")]
    if errors:
        return _log_record_summary(errors[-1])
    if plain:
        return plain[-1]
    return _log_record_summary(records[-1]) if records else ""


def supervisor_state(status_line: str) -> str:
    """`app-8001   FATAL   Exited too quickly (...)` -> `FATAL (Exited too quickly (...))`; a RUNNING
    one is just `RUNNING` (its pid and uptime say nothing about the failure)."""
    fields = status_line.strip().splitlines()[0].split(None, 2) if status_line.strip() else []
    if len(fields) < 2:
        return ""
    if fields[1] == "RUNNING" or len(fields) < 3 or not fields[2].strip():
        return fields[1]
    return f"{fields[1]} ({fields[2].strip()})"


def gate_summary(check: str) -> str:
    """What the readiness poller saw, without the URLs: `HTTP 503 after 8s: <start of the body>`
    (once per distinct answer), else the check's first line."""
    answers: dict[str, str] = {}
    lines = check.splitlines()
    for index, line in enumerate(lines):
        match = re.search(r" answered (HTTP \d{3} after \d+s)", line)
        if match and match.group(1) not in answers:
            body = lines[index + 1].strip() if index + 1 < len(lines) and " answered " not in lines[index + 1] else ""
            answers[match.group(1)] = body[:150]
    if answers:
        return ", ".join(f"{answer}: {body}" if body else answer for answer, body in answers.items())
    return next((line.strip() for line in lines if line.strip()), "")


def gate_failure_detail(failure: GateFailed) -> str:
    """One line for the ledger: the gate's answer, then each failed instance's supervisor state and
    last meaningful log line (the root cause an operator looks for); instances that say the same
    are listed once. Bounded; passwords in URLs masked."""
    groups: dict[str, list[str]] = {}
    for port in failure.ports:
        state = supervisor_state(failure.states.get(port, ""))
        cause = log_cause(failure.log_tails.get(port, ""))[:300]
        said = (f" {state}" if state else "") + (f", last log: {cause}" if cause else "")
        groups.setdefault(said, []).append(cmd.program_name(port))
    parts = [", ".join(programs) + said for said, programs in groups.items()]
    gate = gate_summary(failure.check)
    line = f"{failure.host.name}: " + (f"gate {gate}; " if gate else "") + "; ".join(parts)
    line = _URL_PASSWORD.sub(r"\1***@", " ".join(line.split()))
    return line if len(line) <= DETAIL_LIMIT else line[: DETAIL_LIMIT - 1].rsplit(" ", 1)[0] + "…"


def failure_summary(failures: list[GateFailed]) -> str:
    return " | ".join(gate_failure_detail(f) for f in failures)


# -- deploy ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    release: str
    duration_s: float
    message: str


def read_states(session: Session) -> dict[str, cmd.HostState]:
    """Every host's state, read in parallel (one round trip each)."""
    return dict(zip([r.host.name for r in session.remotes], session.parallel(read_state)))


def require_provisioned(session: Session, states: dict[str, cmd.HostState]) -> None:
    for remote in session.remotes:
        if not states[remote.host.name].env_file_exists:
            raise DeployError(
                f"[{remote.host.name}] {layout(remote).env_file} is missing: "
                f"run `invoke provision --env-file PATH` first"
            )


def upload_release(remote: Remote, rel: LocalRelease, rel_id: str, deployed_at: str) -> None:
    lay = layout(remote)
    started = time.monotonic()
    remote.put_bytes(rel.archive, cmd.upload_path(lay, rel_id))
    remote.run(cmd.extract_release_command(lay, rel_id, cmd.release_metadata(rel.tag, rel.commit, deployed_at)))
    venv = remote.run(cmd.ensure_venv_command(lay, rel_id, rel.lock_hash, remote.host.python))
    if not remote.dry_run:  # the dry run printed what it would upload and run instead
        note = venv.stdout.strip() or "venv"
        remote.say(f"uploaded {rel_id} ({len(rel.archive) // 1024} KiB, {note}) in {time.monotonic() - started:.1f}s")


def append_ledger(session: Session, entry: ledger.LedgerEntry) -> None:
    """Append the entry on every host (in a dry run: print the command, as for any other write)."""
    line = ledger.format_entry(entry)
    session.parallel(lambda remote: remote.run(cmd.ledger_append_command(layout(remote), line)))


def prune(remote: Remote, keep_also: set[str]) -> None:
    state = read_state(remote)
    current = state.current
    doomed = cmd.releases_to_prune(
        state.releases,
        remote.host.keep_releases,
        keep_also | ({current} if current else set()),
        ledger.bad_releases(ledger_entries(state)),
    )
    if doomed:
        remote.run(cmd.prune_command(layout(remote), doomed))
        if not remote.dry_run:
            remote.say(f"pruned {len(doomed)} old release(s)")
    unused = cmd.unused_venvs(remote.query(cmd.venv_links_command(layout(remote))).stdout)
    if unused:
        remote.run(cmd.prune_venvs_command(layout(remote), unused))
        if not remote.dry_run:
            remote.say(f"removed {len(unused)} venv(s) no release uses")


def deploy(session: Session, repo: Path, tag: str) -> Outcome:
    started = time.monotonic()
    rel = local_release(repo, tag)
    now = utc_now()
    rel_id = cmd.release_id(now.strftime("%Y%m%dT%H%M%SZ"), tag)
    deployed_at = now.isoformat(timespec="seconds")
    hosts = [r.host.name for r in session.remotes]
    session.say(f"deploying {tag} ({rel.commit[:12]}) as {rel_id} to {', '.join(hosts)}")
    session.connect()
    with Lock(session, f"deploy {tag}"):
        states = read_states(session)
        require_provisioned(session, states)
        previous = states[hosts[0]].current

        def record(outcome: str, detail: str) -> None:
            append_ledger(
                session,
                ledger.LedgerEntry(
                    who=operator(),
                    when=deployed_at,
                    kind="deploy",
                    tag=tag,
                    commit=rel.commit,
                    release=rel_id,
                    hosts=hosts,
                    duration_s=round(time.monotonic() - started, 2),
                    outcome=outcome,
                    from_release=previous,
                    marked_bad=[] if outcome == "ok" else [rel_id],
                    detail=detail,
                ),
            )

        try:
            session.parallel(lambda remote: upload_release(remote, rel, rel_id, deployed_at))
            first = session.remotes[0]
            migrated = first.run(cmd.migrate_command(layout(first), rel_id))
            if migrated.stdout.strip():
                first.say(migrated.stdout.strip())
        except RemoteCommandError as error:
            record("failed", str(error))
            raise DeployError(
                f"deploy of {tag} failed before any host switched; nothing changed for the users:\n{error}"
            ) from None
        failures = switch_all(session, states, {r.host.name: rel_id for r in session.remotes})
        if failures:
            record("rolled_back", failure_summary(failures))
            raise DeployError(
                f"deploy of {tag} FAILED its health gate and was rolled back; {rel_id} is marked bad"
            ) from failures[0]
        record("ok", "")
        session.parallel(lambda remote: prune(remote, {previous} if previous else set()))
    duration = time.monotonic() - started
    done = "would deploy" if session.dry_run else "deployed"
    return Outcome(rel_id, duration, f"{done} {tag} as {rel_id} to {len(hosts)} host(s) in {duration:.1f}s")


# -- rollback --------------------------------------------------------------------------------


def choose_rollback_target(host: Host, state: cmd.HostState, to_tag: str | None) -> tuple[str, str]:
    """(current release, target release) from the first host's state, refusing when there is none."""
    current = state.current
    if current is None:
        raise DeployError(f"[{host.name}] nothing is deployed yet")
    available = state.releases
    bad = ledger.bad_releases(ledger_entries(state))
    if to_tag:
        matching = [r for r in available if ledger.release_tag(r) == to_tag]
        if not matching:
            raise DeployError(
                f"[{host.name}] no release of {to_tag} on the host "
                f"(available: {', '.join(available)}); deploy it instead"
            )
        target = matching[-1]
    else:
        previous = ledger.previous_good_release(available, current, bad)
        if previous is None:
            raise DeployError(f"[{host.name}] no good release older than {current} to roll back to")
        target = previous
    if target == current:
        raise DeployError(f"{target} is already current")
    return current, target


def bad_target_warning(target: str, entries: list[ledger.LedgerEntry]) -> str | None:
    """A warning line when `--to` picked a release marked bad (allowed: the operator may know better)."""
    if target not in ledger.bad_releases(entries):
        return None
    marking = next((e for e in reversed(entries) if target in e.marked_bad), None)
    why = f" ({marking.kind} {marking.outcome} at {marking.when})" if marking else ""
    return (
        f"WARNING: {target} is marked bad{why}; rolling back to it anyway, "
        f"because --to asked for it. See `invoke releases` for the good ones."
    )


def check_database_for_rollback(
    remote: Remote, state: cmd.HostState, current: str, target: str, downgrade: bool
) -> None:
    """Refuse a target whose code is behind the database, or (--downgrade) undo the newer migrations.

    When both releases carry the same newest migration the database cannot be ahead of the target
    (the current release passed its readiness gate, which compares heads), so the slower status
    query through the ops CLI is skipped: a code-only rollback stays fast.
    """
    lay = layout(remote)
    if state.migration_heads.get(current) == state.migration_heads.get(target):
        return
    status_out = remote.query(cmd.migrate_status_command(lay, target)).stdout
    status = json.loads(status_out.strip().splitlines()[-1])
    if status.get("pending"):
        raise DeployError(
            f"refusing: {target} has migrations the database lacks ({', '.join(status['pending'])}); "
            f"a rollback never migrates forward: deploy that tag instead (`invoke deploy --tag "
            f"{ledger.release_tag(target)}`)."
        )
    if not cmd.database_ahead_of(status):
        return
    code_number = status.get("code_head_number")
    if not downgrade:
        raise DeployError(
            f"refusing: {target}'s newest migration is {status.get('code_head')} but the database is "
            f"at {status.get('db_head')}; its code would run against a schema it does not know.\n"
            f"Rerun with --downgrade to undo the newer migrations (with {current}'s code: "
            f"`migrate --to {code_number}`) before switching; that may drop data those migrations added."
        )
    result = remote.run(cmd.migrate_to_command(lay, current, code_number))
    remote.say(result.stdout.strip() or f"would downgrade to migration {code_number}")


def rollback(session: Session, to_tag: str | None, downgrade: bool) -> Outcome:
    started = time.monotonic()
    when = utc_now().isoformat(timespec="seconds")
    hosts = [r.host.name for r in session.remotes]
    session.connect()
    with Lock(session, f"rollback to {to_tag or 'previous'}"):
        states = read_states(session)
        first = session.remotes[0]
        current, target = choose_rollback_target(first.host, states[first.host.name], to_tag)
        session.say(f"rolling back {', '.join(hosts)}: {current} -> {target}")
        warning = bad_target_warning(target, ledger_entries(states[first.host.name]))
        if warning:
            session.say(warning)
        missing = [name for name in hosts if target not in states[name].releases]
        if missing:
            raise DeployError(f"release {target} is not on {', '.join(missing)}")
        check_database_for_rollback(first, states[first.host.name], current, target, downgrade)
        commit = json.loads(states[first.host.name].metadata.get(target) or "{}").get("commit", "")
        failures = switch_all(session, states, {name: target for name in hosts})
        append_ledger(
            session,
            ledger.LedgerEntry(
                who=operator(),
                when=when,
                kind="rollback",
                tag=ledger.release_tag(target),
                commit=commit,
                release=target,
                hosts=hosts,
                duration_s=round(time.monotonic() - started, 2),
                outcome="failed" if failures else "ok",
                from_release=current,
                marked_bad=[target] if failures else [current],
                detail=failure_summary(failures),
            ),
        )
        if failures:
            raise DeployError(
                f"rollback to {target} FAILED its health gate; hosts are back on {current}"
            ) from failures[0]
    duration = time.monotonic() - started
    done = "would roll back" if session.dry_run else "rolled back"
    return Outcome(target, duration, f"{done} to {target} on {len(hosts)} host(s) in {duration:.1f}s")


# -- provision -------------------------------------------------------------------------------


def provision_host(remote: Remote, env_file: bytes | None, database_jobs: bool = True) -> None:
    """Idempotent: layout, secrets, supervisor programs, nginx site, crontab block (with the
    database jobs only where `database_jobs`: one host per environment)."""
    host, lay = remote.host, layout(remote)
    remote.run(cmd.layout_command(lay))
    if env_file is not None:
        uploaded = f"{lay.shared}/.env.upload"
        remote.put_bytes(env_file, uploaded)
        remote.run(cmd.install_env_file_command(lay, uploaded))
        done = "would install" if remote.dry_run else "installed"
        remote.say(f"{done} {lay.env_file} (mode 0600, {len(env_file)} bytes; contents not shown)")
    state = read_state(remote)
    if env_file is None and not state.env_file_exists:
        remote.say(f"WARNING: {lay.env_file} is missing; pass --env-file before deploying")
    files = {
        lay.supervisor_conf: cmd.supervisord_conf(lay),
        lay.nginx_conf: cmd.nginx_conf(lay, host),
        lay.nginx_upstream: cmd.nginx_upstream_conf(host, host_live_ports(remote, state)),
    }
    for port in host.all_ports:
        files[lay.program_conf(port)] = cmd.supervisor_program_conf(lay, host, port)
    remote.run(cmd.remove_stale_programs_command(lay, host.all_ports))
    for path, content in files.items():
        remote.run(cmd.write_file_command(path, content), show=f"write {path}:\n{content}")
    remote.run(cmd.supervisor_ensure_running_command(lay))
    remote.run(cmd.start_live_instances_command(lay))
    remote.run(cmd.nginx_reload_command(lay))
    block = cmd.crontab_block(lay, host, database_jobs)
    remote.run(cmd.crontab_install_command(cmd.crontab_marker(lay), block), show=f"install crontab block:\n{block}")
    remote.say("would be provisioned" if remote.dry_run else "provisioned")


def provision(session: Session, data: bytes | None) -> None:
    """Provision every host; `data` is the env file's content (read by the caller before any SSH)."""
    first = session.environment.hosts[0].name  # runs the backup and the maintenance window
    session.parallel(lambda remote: provision_host(remote, data, database_jobs=remote.host.name == first))


def provision_system(session: Session, database: str, admin_user: str) -> None:
    """Root-only first-time setup, over SSH as `admin_user` (root, or a sudoer: through `sudo -n`).

    The deploy user may not exist yet on a fresh VPS, so this part logs in as the admin instead.
    """

    def run(remote: Remote) -> None:
        admin = Remote(replace(remote.host, ssh_user=admin_user), session.dry_run, session.out)
        try:
            for command in cmd.system_setup_commands(remote.host, database):
                wrapped = command if admin_user == "root" else f"sudo -n sh -c {cmd.q(command)}"
                admin.run(wrapped, show=f"(as {admin_user}) {command}")
        finally:
            admin.close()

    session.parallel(run)


def unprovision_host(remote: Remote) -> None:
    """Stop this deploy root's services and drop its crontab block (sandbox teardown)."""
    lay = layout(remote)
    remote.run(cmd.stop_services_command(lay), check=False)
    remote.run(cmd.crontab_install_command(cmd.crontab_marker(lay), ""), check=False)

"""Deploy, rollback and provision orchestration: the thin layer that RUNS what deploy.commands BUILDS.

A deploy: take the lock on every host (in inventory order, so two concurrent deploys never each
hold half), upload the tag's `git archive` to every host in parallel, link its venv (reused by
lock-file hash), migrate once on the first host, then host by host switch `current` and start the
release on each instance's standby port beside the live one, gate every new instance on
/health/ready, and only then flip nginx to them (the old ones drain). If a gate fails, nginx never
changed on that host, and every host that already flipped goes back; the release is marked bad.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable, TypeVar

from deploy import commands as cmd
from deploy import ledger
from deploy.commands import Layout
from deploy.inventory import Environment, Host
from deploy.ssh import Remote, RemoteCommandError

T = TypeVar("T")
LOG_LINES_ON_FAILURE = 30


class DeployError(RuntimeError):
    """The operation stopped; the message says why and what state the hosts are in."""


class LockHeldError(DeployError):
    """Another operation holds the deploy lock."""


class GateFailed(DeployError):
    """New instances did not become ready; carries the failing check and their last log lines."""

    def __init__(self, host: Host, ports: list[int], check: str, log_tails: dict[int, str]):
        self.host, self.ports, self.check = host, ports, check
        listing = ", ".join(f"{host.bind_address}:{port}" for port in ports)
        tails = "".join(
            f"\n--- last {LOG_LINES_ON_FAILURE} log lines of {cmd.program_name(port)} ---\n{tail.rstrip()}"
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


def git(repo: Path, *args: str, binary: bool = False) -> str | bytes:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    if result.returncode != 0:
        raise DeployError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout if binary else result.stdout.decode().strip()


def resolve_tag(repo: Path, tag: str) -> str:
    """The commit a tag names; refuses a tag that does not exist (never a branch or a sha)."""
    try:
        cmd.check_tag(tag)
        return git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    except ValueError as error:
        raise DeployError(str(error)) from None
    except DeployError:
        raise DeployError(f"tag {tag!r} does not exist in {repo} (create it with `git tag {tag}`, "
                          f"or fetch tags with `git fetch --tags`)") from None


def local_release(repo: Path, tag: str) -> LocalRelease:
    commit = resolve_tag(repo, tag)
    archive = git(repo, "archive", "--format=tar.gz", tag, binary=True)
    try:
        lock_file = git(repo, "show", f"{tag}:requirements.lock", binary=True)
    except DeployError:
        raise DeployError(f"tag {tag!r} has no requirements.lock at the repository root") from None
    return LocalRelease(tag, commit, archive, hashlib.sha256(lock_file).hexdigest())


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


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

    def parallel(self, action: Callable[[Remote], T]) -> list[T]:
        """Run `action` on every host at once; re-raise the first failure after all finished."""
        with ThreadPoolExecutor(max_workers=max(1, len(self.remotes))) as pool:
            futures = [pool.submit(action, remote) for remote in self.remotes]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        return [f.result() for f in futures]

    def close(self) -> None:
        for remote in self.remotes:
            remote.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def layout(remote: Remote) -> Layout:
    return Layout(remote.host.deploy_root)


def current_release(remote: Remote) -> str | None:
    target = remote.query(cmd.read_current_command(layout(remote))).stdout.strip()
    return Path(target).name if target else None


def release_ids(remote: Remote) -> list[str]:
    return sorted(remote.query(cmd.list_releases_command(layout(remote))).stdout.split())


def read_ledger(remote: Remote) -> list[ledger.LedgerEntry]:
    return ledger.parse_ledger(remote.query(cmd.ledger_read_command(layout(remote))).stdout)


# -- lock ------------------------------------------------------------------------------------


@dataclass
class Lock:
    session: Session
    operation: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    held: list[Remote] = field(default_factory=list)

    def holder(self) -> str:
        return json.dumps({"holder": operator(), "operation": self.operation, "since": utc_now().isoformat(
            timespec="seconds"), "token": self.token}, sort_keys=True)

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
        for remote in self.held:
            remote.run(cmd.lock_release_command(layout(remote), self.token), check=False)
        self.held.clear()

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the health-gated switch -----------------------------------------------------------------


def live_ports(remote: Remote) -> tuple[int, ...]:
    return cmd.parse_live_ports(remote.query(cmd.read_live_ports_command(layout(remote))).stdout, remote.host)


def switch_host(remote: Remote, rel_id: str) -> None:
    """Point `current` at `rel_id`, start it on the standby ports, gate, flip nginx to it.

    Raises GateFailed with the old instances still live and serving (nginx never changed).
    """
    host, lay = remote.host, layout(remote)
    old = live_ports(remote)
    new = tuple(host.partner_port(port) for port in old)
    remote.run(cmd.switch_current_command(lay, rel_id))
    remote.say(f"current -> {rel_id}; starting {', '.join(cmd.program_name(p) for p in new)}")
    gate = remote.run(cmd.gated_switch_command(lay, host, new, old), check=False)
    if not gate.ok:
        output = gate.stdout + gate.stderr
        failed = cmd.failed_ports(output, host, new)
        tails = {port: remote.query(cmd.instance_output_tail_command(lay, port, LOG_LINES_ON_FAILURE)).stdout
                 for port in failed}
        remote.run(cmd.stop_instances_in_background_command(lay, new), check=False)
        raise GateFailed(host, failed, output, tails)
    remote.say(f"{rel_id} ready and live on {', '.join(f'{host.bind_address}:{p}' for p in new)}"
               f" (old instances draining)")


def switch_all(session: Session, targets: dict[str, str]) -> GateFailed | None:
    """Switch host by host; on a failed gate put every switched host back on its old release."""
    old = {remote.host.name: current_release(remote) for remote in session.remotes}
    switched: list[Remote] = []
    for remote in session.remotes:
        try:
            switch_host(remote, targets[remote.host.name])
        except GateFailed as failure:
            session.say(str(failure))
            revert(session, remote, switched, old)
            return failure
        switched.append(remote)
    return None


def revert(session: Session, failed: Remote, switched: list[Remote], old: dict[str, str | None]) -> None:
    """The failed host still serves its old instances: only `current` goes back. Hosts that already
    flipped switch back to their previous release the same gated way."""
    session.say("rolling back every host that switched")
    previous = old[failed.host.name]
    if previous is not None:
        failed.run(cmd.switch_current_command(layout(failed), previous))
        failed.say(f"current -> {previous} (back; its instances never stopped serving)")
    for remote in reversed(switched):
        previous = old[remote.host.name]
        if previous is None:
            remote.say("no previous release to return to: left on the new release")
            continue
        switch_host(remote, previous)


# -- deploy ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    release: str
    duration_s: float
    message: str


def require_provisioned(session: Session) -> None:
    def check(remote: Remote) -> None:
        if not remote.query(cmd.env_file_exists_command(layout(remote)), check=False).ok:
            raise DeployError(f"[{remote.host.name}] {layout(remote).env_file} is missing: "
                              f"run `invoke provision --env-file PATH` first")
    session.parallel(check)


def upload_release(remote: Remote, rel: LocalRelease, rel_id: str, deployed_at: str) -> None:
    lay = layout(remote)
    started = time.monotonic()
    remote.put_bytes(rel.archive, cmd.upload_path(lay, rel_id))
    remote.run(cmd.extract_release_command(lay, rel_id, cmd.release_metadata(rel.tag, rel.commit, deployed_at)))
    venv = remote.run(cmd.ensure_venv_command(lay, rel_id, rel.lock_hash, remote.host.python))
    note = venv.stdout.strip() or "venv"
    remote.say(f"uploaded {rel_id} ({len(rel.archive) // 1024} KiB, {note}) in {time.monotonic() - started:.1f}s")


def append_ledger(session: Session, entry: ledger.LedgerEntry) -> None:
    line = ledger.format_entry(entry)
    session.parallel(lambda remote: remote.run(cmd.ledger_append_command(layout(remote), line)))


def prune(remote: Remote, keep_also: set[str]) -> None:
    current = current_release(remote)
    doomed = cmd.releases_to_prune(release_ids(remote), remote.host.keep_releases,
                                   keep_also | ({current} if current else set()))
    if doomed:
        remote.run(cmd.prune_command(layout(remote), doomed))
        remote.say(f"pruned {len(doomed)} old release(s)")
    unused = cmd.unused_venvs(remote.query(cmd.venv_links_command(layout(remote))).stdout)
    if unused:
        remote.run(cmd.prune_venvs_command(layout(remote), unused))
        remote.say(f"removed {len(unused)} venv(s) no release uses")


def deploy(session: Session, repo: Path, tag: str) -> Outcome:
    started = time.monotonic()
    rel = local_release(repo, tag)
    now = utc_now()
    rel_id = cmd.release_id(now.strftime("%Y%m%dT%H%M%SZ"), tag)
    deployed_at = now.isoformat(timespec="seconds")
    hosts = [r.host.name for r in session.remotes]
    session.say(f"deploying {tag} ({rel.commit[:12]}) as {rel_id} to {', '.join(hosts)}")
    require_provisioned(session)
    with Lock(session, f"deploy {tag}"):
        previous = current_release(session.remotes[0])

        def record(outcome: str, detail: str) -> None:
            if session.dry_run:
                return
            append_ledger(session, ledger.LedgerEntry(
                who=operator(), when=deployed_at, kind="deploy", tag=tag, commit=rel.commit, release=rel_id,
                hosts=hosts, duration_s=round(time.monotonic() - started, 2), outcome=outcome,
                from_release=previous, marked_bad=[] if outcome == "ok" else [rel_id], detail=detail))

        try:
            session.parallel(lambda remote: upload_release(remote, rel, rel_id, deployed_at))
            first = session.remotes[0]
            migrated = first.run(cmd.migrate_command(layout(first), rel_id))
            if migrated.stdout.strip():
                first.say(migrated.stdout.strip())
        except RemoteCommandError as error:
            record("failed", str(error))
            raise DeployError(f"deploy of {tag} failed before any host switched; nothing changed "
                              f"for the users:\n{error}") from None
        failure = switch_all(session, {r.host.name: rel_id for r in session.remotes})
        if failure is not None:
            record("rolled_back", f"{failure.host.name}:{failure.ports}: {failure.check.strip()[:500]}")
            raise DeployError(f"deploy of {tag} FAILED its health gate and was rolled back; "
                              f"{rel_id} is marked bad") from failure
        record("ok", "")
        session.parallel(lambda remote: prune(remote, {previous} if previous else set()))
    duration = time.monotonic() - started
    return Outcome(rel_id, duration, f"deployed {tag} as {rel_id} to {len(hosts)} host(s) in {duration:.1f}s")


# -- rollback --------------------------------------------------------------------------------


def choose_rollback_target(remote: Remote, to_tag: str | None) -> tuple[str, str]:
    """(current release, target release) on the first host, refusing when there is none."""
    current = current_release(remote)
    if current is None:
        raise DeployError(f"[{remote.host.name}] nothing is deployed yet")
    available = release_ids(remote)
    bad = ledger.bad_releases(read_ledger(remote))
    if to_tag:
        matching = [r for r in available if ledger.release_tag(r) == to_tag]
        if not matching:
            raise DeployError(f"[{remote.host.name}] no release of {to_tag} on the host "
                              f"(available: {', '.join(available)}); deploy it instead")
        target = matching[-1]
    else:
        target = ledger.previous_good_release(available, current, bad)
        if target is None:
            raise DeployError(f"[{remote.host.name}] no good release older than {current} to roll back to")
    if target == current:
        raise DeployError(f"{target} is already current")
    return current, target


def check_database_for_rollback(remote: Remote, current: str, target: str, downgrade: bool) -> None:
    """Refuse a target whose code is behind the database, or (--downgrade) undo the newer migrations.

    When both releases carry the same newest migration the database cannot be ahead of the target
    (the current release passed its readiness gate, which compares heads), so the slower status
    query through the ops CLI is skipped: a code-only rollback stays fast.
    """
    lay = layout(remote)
    heads = {rel: remote.query(cmd.migration_head_command(lay, rel)).stdout.strip() for rel in (current, target)}
    if heads[current] == heads[target]:
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
    with Lock(session, f"rollback to {to_tag or 'previous'}"):
        first = session.remotes[0]
        current, target = choose_rollback_target(first, to_tag)
        session.say(f"rolling back {', '.join(hosts)}: {current} -> {target}")

        def check_target(remote: Remote) -> None:
            if not remote.query(cmd.release_exists_command(layout(remote), target), check=False).ok:
                raise DeployError(f"[{remote.host.name}] release {target} is not on this host")
        session.parallel(check_target)

        check_database_for_rollback(first, current, target, downgrade)
        metadata = first.query(cmd.release_metadata_read_command(layout(first), target)).stdout
        commit = json.loads(metadata).get("commit", "")
        failure = switch_all(session, {r.host.name: target for r in session.remotes})
        outcome = "failed" if failure else "ok"
        if not session.dry_run:
            append_ledger(session, ledger.LedgerEntry(
                who=operator(), when=when, kind="rollback", tag=ledger.release_tag(target), commit=commit,
                release=target, hosts=hosts, duration_s=round(time.monotonic() - started, 2), outcome=outcome,
                from_release=current, marked_bad=[target] if failure else [current],
                detail=failure.check.strip()[:500] if failure else ""))
        if failure:
            raise DeployError(f"rollback to {target} FAILED its health gate; hosts are back on {current}") from failure
    duration = time.monotonic() - started
    return Outcome(target, duration, f"rolled back to {target} on {len(hosts)} host(s) in {duration:.1f}s")


# -- provision -------------------------------------------------------------------------------


def provision_host(remote: Remote, env_file: bytes | None) -> None:
    """Idempotent: layout, secrets, supervisor programs, nginx site, crontab block."""
    host, lay = remote.host, layout(remote)
    remote.run(cmd.layout_command(lay))
    if env_file is not None:
        uploaded = f"{lay.shared}/.env.upload"
        remote.put_bytes(env_file, uploaded)
        remote.run(cmd.install_env_file_command(lay, uploaded))
        remote.say(f"installed {lay.env_file} (mode 0600, {len(env_file)} bytes; contents not shown)")
    elif not remote.query(cmd.env_file_exists_command(lay), check=False).ok:
        remote.say(f"WARNING: {lay.env_file} is missing; pass --env-file before deploying")
    files = {lay.supervisor_conf: cmd.supervisord_conf(lay), lay.nginx_conf: cmd.nginx_conf(lay, host),
             lay.nginx_upstream: cmd.nginx_upstream_conf(host, live_ports(remote))}
    for port in host.all_ports:
        files[lay.program_conf(port)] = cmd.supervisor_program_conf(lay, host, port)
    remote.run(cmd.remove_stale_programs_command(lay, host.all_ports))
    for path, content in files.items():
        remote.run(cmd.write_file_command(path, content), show=f"write {path}:\n{content}")
    remote.run(cmd.supervisor_ensure_running_command(lay))
    remote.run(cmd.nginx_reload_command(lay))
    block = cmd.crontab_block(lay, host)
    remote.run(cmd.crontab_install_command(cmd.crontab_marker(lay), block), show=f"install crontab block:\n{block}")
    remote.say("provisioned")


def provision(session: Session, env_file: Path | None) -> None:
    data = env_file.read_bytes() if env_file else None
    session.parallel(lambda remote: provision_host(remote, data))


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

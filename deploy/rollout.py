"""Deploy, rollback and provision orchestration: what RUNS the commands deploy.commands BUILDS.

A deploy: take the lock on every host (in inventory order, so two concurrent deploys never each
hold half), upload the tag's `git archive` to every host in parallel, link its venv (reused by
lock-file hash), migrate once on the database host (deploy/primary.py), then switch (deploy and rollback share it):

1. on every host in parallel: point each standby slot at the release and start it on the standby
   ports beside the live ones, gated on /health/ready;
2. only when every gate on every host passed: host by host, flip nginx to the new instances and
   verify readiness through nginx;
3. on every host in parallel: commit: `current` names the release, and the old instances stop
   in the background (they drain).

The old instances serve until step 3, and until the flip a restart or a reboot starts only the
old release, so any failure or interruption before it puts every host back at once (nginx back
to the old instances where it flipped, new instances stopped); a failed release is marked bad.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from deploy import commands as cmd
from deploy import interrupts, ledger
from deploy.errors import DeployError
from deploy.gate import failure_summary
from deploy.inventory import Host
from deploy.local_git import LocalRelease, local_release, operator, utc_now
from deploy.lock import Lock
from deploy.primary import database_host
from deploy.progress import VenvProgress
from deploy.session import Session, layout, ledger_entries, read_state
from deploy.ssh import Remote, RemoteCommandError
from deploy.switch import switch_all


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


def require_slot_programs(session: Session, states: dict[str, cmd.HostState]) -> None:
    """Refuse, before any change, hosts whose programs still run `current`: their standby
    instances would start the old release and pass the gate with the old code."""
    for remote in session.remotes:
        stale = states[remote.host.name].programs_without_slots
        if stale:
            raise DeployError(
                f"[{remote.host.name}] {', '.join(stale)} still run `current` (provisioned by an older toolkit):"
                f" run `invoke provision` first, then deploy again"
            )


def upload_release(remote: Remote, rel: LocalRelease, rel_id: str, deployed_at: str) -> None:
    lay = layout(remote)
    started = time.monotonic()
    remote.put_bytes(rel.archive, cmd.upload_path(lay, rel_id))
    remote.run(
        cmd.extract_release_command(lay, rel_id, cmd.release_metadata(rel.tag, rel.commit, deployed_at)),
        what=f"unpack {rel_id} and write its RELEASE.json",
    )
    with VenvProgress(remote.say) as progress:
        venv = remote.run(
            cmd.ensure_venv_command(lay, rel_id, rel.lock_hash, remote.host.python),
            what="reuse the venv of this requirements.lock, or build it, and link it as the release's .venv",
            key=f"pip install -r requirements.lock into {lay.venv(rel.lock_hash)} (unless .complete)",
            on_line=progress.feed,
        )
    if not remote.dry_run:  # the dry run printed what it would upload and run instead
        note = next((line for line in reversed(venv.stdout.split()) if line.startswith("venv-")), "venv")
        remote.say(f"uploaded {rel_id} ({len(rel.archive) // 1024} KiB, {note}) in {time.monotonic() - started:.1f}s")


def append_ledger(session: Session, entry: ledger.LedgerEntry) -> None:
    """Append the entry on every host (in a dry run: print the command, as for any other write).
    A signal meanwhile waits until every host has the line (deploy.interrupts)."""
    line = ledger.format_entry(entry)
    with interrupts.deferred():
        session.parallel(
            lambda remote: remote.run(
                cmd.ledger_append_command(layout(remote), line),
                what=f"append a {entry.kind} {entry.outcome} line to the ledger",
                key=f"printf ENTRY >> {layout(remote).ledger}",
            )
        )


def prune(remote: Remote, keep_also: set[str]) -> None:
    state = read_state(remote)
    current, entries = state.current, ledger_entries(state)
    doomed = cmd.releases_to_prune(
        state.releases,
        remote.host.keep_releases,
        keep_also | ({current} if current else set()),
        ledger.bad_releases(entries) | ledger.never_live_releases(entries),
    )
    if doomed:
        remote.run(cmd.prune_command(layout(remote), doomed), what=f"delete {len(doomed)} old release(s)")
        if not remote.dry_run:
            remote.say(f"pruned {len(doomed)} old release(s)")
    unused = cmd.unused_venvs(remote.query(cmd.venv_links_command(layout(remote))).stdout)
    if unused:
        remote.run(
            cmd.prune_venvs_command(layout(remote), unused), what=f"delete {len(unused)} venv(s) no release uses"
        )
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
    interrupts.check()  # nothing changed yet: stop before the lock
    with Lock(session, f"deploy {tag}"):
        states = read_states(session)
        require_provisioned(session, states)
        require_slot_programs(session, states)
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
                    marked_bad=[rel_id] if outcome in ("failed", "rolled_back") else [],
                    detail=detail,
                ),
            )

        record("started", "")  # alone in the ledger, it shows a deploy that never finished
        try:
            session.parallel(lambda remote: upload_release(remote, rel, rel_id, deployed_at))
            first = database_host(session)  # after a failover: the promoted host
            migrated = first.run(cmd.migrate_command(layout(first), rel_id), what="migrate the database (once)")
            if migrated.stdout.strip():
                first.say(migrated.stdout.strip())
        except RemoteCommandError as error:
            record("failed", str(error))
            raise DeployError(
                f"deploy of {tag} failed before any host switched; nothing changed for the users:\n{error}"
            ) from None
        except interrupts.Interrupted as stop:
            record("interrupted", f"{interrupts.signal_name(stop.signum)} before any host switched")
            raise stop.saying(
                f"deploy of {tag} interrupted by {interrupts.signal_name(stop.signum)} before any host switched;"
                f" nothing changed for the users, the lock is released"
            ) from None
        try:
            failures = switch_all(session, states, {r.host.name: rel_id for r in session.remotes})
        except interrupts.Interrupted as stop:
            record("interrupted", f"{interrupts.signal_name(stop.signum)} during the switch; every host put back")
            raise stop.saying(interrupted_switch_message(f"deploy of {tag}", stop, previous)) from None
        if failures:
            record("rolled_back", failure_summary(failures))
            raise DeployError(
                f"deploy of {tag} FAILED its health gate and was rolled back; {rel_id} is marked bad"
            ) from failures[0]
        record("ok", "")
        try:
            session.parallel(lambda remote: prune(remote, {previous} if previous else set()))
        except interrupts.Interrupted:
            session.say(f"{tag} is deployed; the prune of old releases was interrupted (the next deploy prunes)")
    duration = time.monotonic() - started
    done = "would deploy" if session.dry_run else "deployed"
    return Outcome(rel_id, duration, f"{done} {tag} as {rel_id} to {len(hosts)} host(s) in {duration:.1f}s")


def interrupted_switch_message(what: str, stop: interrupts.Interrupted, back_on: str | None) -> str:
    where = f"every host is back on {back_on}" if back_on else "the new instances are stopped"
    return (
        f"{what} interrupted by {interrupts.signal_name(stop.signum)}: {where}, the lock is released,"
        f" and the ledger says interrupted"
    )


def choose_rollback_target(host: Host, state: cmd.HostState, to_tag: str | None) -> tuple[str, str]:
    """(current release, target release) from the first host's state, refusing when there is none."""
    current = state.current
    if current is None:
        raise DeployError(f"[{host.name}] nothing is deployed yet")
    available = state.releases
    if to_tag:
        matching = [r for r in available if ledger.release_tag(r) == to_tag]
        if not matching:
            raise DeployError(
                f"[{host.name}] no release of {to_tag} on the host "
                f"(available: {', '.join(available)}); deploy it instead"
            )
        target = matching[-1]
    else:
        previous = ledger.default_rollback_target(ledger_entries(state), available, current)
        if previous is None:
            raise DeployError(
                f"[{host.name}] no release that was live before {current} is still on the host and not marked "
                f"bad (see `invoke releases`): roll back with `--to TAG`, or deploy a known good tag"
            )
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
    result = remote.run(
        cmd.migrate_to_command(lay, current, code_number), what=f"undo the migrations after {code_number}"
    )
    remote.say(result.stdout.strip() or f"would downgrade to migration {code_number}")


def rollback(session: Session, to_tag: str | None, downgrade: bool) -> Outcome:
    started = time.monotonic()
    when = utc_now().isoformat(timespec="seconds")
    hosts = [r.host.name for r in session.remotes]
    session.connect()
    with Lock(session, f"rollback to {to_tag or 'previous'}"):
        states = read_states(session)
        require_slot_programs(session, states)
        first = session.remotes[0]
        current, target = choose_rollback_target(first.host, states[first.host.name], to_tag)
        session.say(f"rolling back {', '.join(hosts)}: {current} -> {target}")
        warning = bad_target_warning(target, ledger_entries(states[first.host.name]))
        if warning:
            session.say(warning)
        missing = [name for name in hosts if target not in states[name].releases]
        if missing:
            raise DeployError(f"release {target} is not on {', '.join(missing)}")
        commit = json.loads(states[first.host.name].metadata.get(target) or "{}").get("commit", "")

        def record(outcome: str, marked_bad: list[str], detail: str) -> None:
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
                    outcome=outcome,
                    from_release=current,
                    marked_bad=marked_bad,
                    detail=detail,
                ),
            )

        record("started", [], "")  # alone in the ledger, it shows a rollback that never finished
        try:
            interrupts.check()
            # Once migrations may be undone, going back to `current` would run it on a schema it
            # does not know: a --downgrade rollback runs to its end, signal or not.
            with interrupts.deferred() if downgrade else nullcontext():
                check_database_for_rollback(first, states[first.host.name], current, target, downgrade)
                failures = switch_all(session, states, {name: target for name in hosts})
        except interrupts.Interrupted as stop:
            record("interrupted", [], f"{interrupts.signal_name(stop.signum)}; every host put back")
            raise stop.saying(interrupted_switch_message(f"rollback to {target}", stop, current)) from None
        record("failed" if failures else "ok", [target] if failures else [current], failure_summary(failures))
        if failures:
            raise DeployError(
                f"rollback to {target} FAILED its health gate; hosts are back on {current}"
            ) from failures[0]
    duration = time.monotonic() - started
    done = "would roll back" if session.dry_run else "rolled back"
    return Outcome(target, duration, f"{done} to {target} on {len(hosts)} host(s) in {duration:.1f}s")

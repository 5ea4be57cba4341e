"""Invoke tasks: backup, backups, restore, verify-backup, prune-backups (runbook: docs/restore.md).

Every operation lives in the VPS-side ops CLI (deploy/ops/backup/); these tasks open SSH to one
host of the environment, run the CLI of its current release with the host's secrets file and
stream the output. All hosts of an environment share one database, so one host does the work:
the first in the inventory unless --host names another. Restoring over the live database also
stops the app instances on every host first (under the deploy lock, so no deploy or rollback
switches instances meanwhile) and brings them back through the health gate.
"""

from __future__ import annotations

import json as jsonlib
import sys
import time

from invoke import Exit, task

from deploy import commands as cmd
from deploy import ledger, local_git, rollout, switch
from deploy.drill import last_json_line
from deploy.inventory import load_inventory
from deploy.lock import Lock
from deploy.primary import database_host
from deploy.session import (
    Session,
    current_ops_command,
    deployed_release,
    host_ops_command,
    layout,
    live_ports,
    read_state,
)
from deploy.ssh import Remote
from deploy.tasks import pitr as pitr_tasks

COMMON_HELP = {
    "env": "environment of the inventory to act on (default: the inventory's default_environment)",
    "inventory": "inventory file (default: $CLICKNBACK_INVENTORY, else deploy/inventory.toml)",
    "host": "name of the host that runs the command (default: the database host: the one the last failover "
    "promoted, else the environment's first host)",
}


class BackupTaskError(RuntimeError):
    """A precondition of a backup task failed; the message says what to do."""


def _help(**extra: str) -> dict[str, str]:
    return {**COMMON_HELP, **extra}


# -- pure helpers (unit-tested) --------------------------------------------------------------


def pick_host_index(host_names: list[str], wanted: str | None) -> int:
    if wanted is None:
        return 0
    if wanted not in host_names:
        raise BackupTaskError(f"no host named {wanted!r} in this environment (hosts: {', '.join(host_names)})")
    return host_names.index(wanted)


def restore_ops_args(backup: str, target: str | None, confirm_live: bool, safety_backup: bool = True) -> list[str]:
    """The ops CLI arguments of a restore; refuses an ambiguous request before touching anything."""
    if not target and not confirm_live:
        raise BackupTaskError(
            "restore needs --target DB (restore into a new database) or --confirm-live (replace the live database)"
        )
    if target and confirm_live:
        # --confirm-live stops the app and replaces the live database; with a --target the live
        # database would be left alone while the output claimed it was restored.
        raise BackupTaskError(
            "give --target DB (restore into a new database, no downtime) or --confirm-live "
            "(replace the live database), not both"
        )
    if not safety_backup and not confirm_live:
        raise BackupTaskError("--no-safety-backup only applies to replacing the live database (--confirm-live)")
    args = ["restore", "--backup", backup]
    if target:
        args += ["--target", target]
    if confirm_live:
        args.append("--confirm-live")
    if not safety_backup:
        args.append("--no-safety-backup")
    return args


def code_migrations_command(lay: cmd.Layout, rel_id: str) -> str:
    """List the release's migration files: its code head, known without any database."""
    return f"ls -1 {cmd.q(lay.release(rel_id) + '/migrations/models')}"


def code_head_number(listing: str) -> int:
    """The newest migration number in a `ls -1` of migrations/models."""
    numbers = [cmd.migration_number(name.strip()) for name in listing.splitlines() if name.strip().endswith(".py")]
    known = [number for number in numbers if number is not None]
    if not known:
        raise BackupTaskError("the current release has no migration files: cannot check the backup's schema")
    return max(known)


def check_restorable_by_release(manifest_head: str | None, code_head_number: int) -> None:
    """A backup from a newer schema than this release's code cannot serve with this code."""
    number = cmd.migration_number(manifest_head)
    if number is not None and number > code_head_number:
        raise BackupTaskError(
            f"the backup's schema is at migration {number}, newer than the current release's code "
            f"(head {code_head_number}): deploy a release that has migration {number}, then restore"
        )


def stop_instances_command(lay: cmd.Layout, ports: tuple[int, ...]) -> str:
    """Stop the live instances and wait for them (SIGTERM: they drain); one already stopped is fine."""
    stops = "; ".join(
        f"{cmd.supervisorctl_command(lay, 'stop', cmd.program_name(port))} >/dev/null 2>&1" for port in ports
    )
    return f"{stops}; true"


# -- running ---------------------------------------------------------------------------------


def _session(env: str | None, inventory: str | None) -> Session:
    return Session(load_inventory(inventory).environment(env))


def _chosen(session: Session, host: str | None) -> Remote:
    """--host, else the database host (the last failover's promoted host, else the first: deploy/primary.py)."""
    if host is not None:
        return session.remotes[pick_host_index([r.host.name for r in session.remotes], host)]
    return database_host(session)


def _run_ops(remote: Remote, *args: str) -> int:
    """Run the current release's ops CLI on the host, streaming its output line by line."""
    command = current_ops_command(remote, *args)
    remote.say(f"running ops CLI: {' '.join(args)}")
    return remote.stream(command)


def _ops_or_exit(remote: Remote, *args: str) -> None:
    status = _run_ops(remote, *args)
    if status != 0:
        raise Exit(
            f"ERROR: [{remote.host.name}] the ops CLI's {args[0]} failed (exit {status}; its output is above)",
            code=status,
        )


@task(help=_help())
def backup(c, env=None, inventory=None, host=None):
    """Back up the database to the S3 bucket now (pg_dump | zstd, sha256, manifest written last)."""
    with _session(env, inventory) as session:
        _ops_or_exit(_chosen(session, host), "backup")


@task(help=_help(json="print the listing as one JSON object instead of a table"))
def backups(c, env=None, inventory=None, host=None, json=False):
    """List complete backups: id, time, size, release, migration, encrypted, verified-or-not."""
    with _session(env, inventory) as session:
        remote = _chosen(session, host)
        if not json:
            _ops_or_exit(remote, "backups")
            return
        # stdout is the one JSON object and nothing else (no host prefix, no progress line), so it
        # parses as it is (`| jq`); a failure goes to stderr.
        result = remote.query(current_ops_command(remote, "backups", "--json"), check=False)
        if not result.ok:
            print((result.stderr.strip() or result.stdout.strip()), file=sys.stderr)
            raise Exit(f"ERROR: [{remote.host.name}] the ops CLI's backups failed (exit {result.exited})", code=1)
        print(jsonlib.dumps(last_json_line(result.stdout), sort_keys=True))


@task(help=_help(dry_run="list what retention would delete; delete nothing"))
def prune_backups(c, env=None, inventory=None, host=None, dry_run=False):
    """Apply backup retention (BACKUP_RETENTION_DAYS / BACKUP_MIN_KEEP of the host's env file)."""
    with _session(env, inventory) as session:
        _ops_or_exit(_chosen(session, host), "prune-backups", *(["--dry-run"] if dry_run else []))


@task(
    help=_help(
        backup="backup id to check (default: the newest complete backup)",
        pitr="instead: replay the WAL archive to a random recent second in a scratch server, check the wallets",
    )
)
def verify_backup(c, env=None, inventory=None, host=None, backup=None, pitr=False):
    """Restore drill: restore into a scratch database, check checksum/rows/migration/FKs/wallets, record it."""
    if pitr:
        if backup:
            raise BackupTaskError("--pitr picks a random recent time in the WAL archive; it takes no --backup")
        return pitr_tasks.verify_pitr(env, inventory, host)
    with _session(env, inventory) as session:
        _ops_or_exit(_chosen(session, host), "verify-backup", *(["--backup", backup] if backup else []))


@task(
    help=_help(
        backup="backup id to restore (see `invoke backups`)",
        target="restore into this NEW database (the app keeps running on the live one)",
        confirm_live="replace the LIVE database: takes the deploy lock, stops the app on every host, takes a "
        "safety backup, restores, migrates up to the current release, restarts behind the health gate",
        no_safety_backup="with --confirm-live, when the live database is lost or too damaged to dump: skip the "
        "safety backup (a missing live database is created again); see docs/disaster-recovery.md",
        to_time="instead of a dump: replay the WAL archive up to this time (e.g. 2026-12-06T10:15:00Z) into a "
        "scratch server on the database host, and check its wallets",
        to_latest="like --to-time, up to the last archived WAL",
        dry_run="with --to-time/--to-latest --confirm-live: print every step, change nothing",
    )
)
def restore(
    c,
    backup=None,
    target=None,
    confirm_live=False,
    no_safety_backup=False,
    env=None,
    inventory=None,
    host=None,
    to_time=None,
    to_latest=False,
    dry_run=False,
):
    """Restore a dump into a new database (--target) or over the live one (--confirm-live); or replay
    the WAL archive to a point in time into a scratch server (see --to-time)."""
    if dry_run and not ((to_time or to_latest) and confirm_live):
        raise BackupTaskError("--dry-run applies to a point-in-time restore over the live cluster only")
    if to_time or to_latest:
        point = pitr_tasks.restore_request(to_time, to_latest, backup, target)
        if confirm_live:
            return pitr_tasks.restore_live(env, inventory, host, point, dry_run)
        return pitr_tasks.restore_to_point(env, inventory, host, point)
    if not backup:
        raise BackupTaskError("restore needs --backup ID (a dump), or --to-time TIME / --to-latest (the WAL archive)")
    ops_args = restore_ops_args(backup, target, confirm_live, safety_backup=not no_safety_backup)
    with _session(env, inventory) as session:
        remote = _chosen(session, host)
        if not confirm_live:
            _ops_or_exit(remote, *ops_args)
            return
        with Lock(session, f"restore {backup}"):
            _restore_live(session, remote, backup, ops_args, safety_backup=not no_safety_backup)


def _code_head_without_database(remote: Remote, lay: cmd.Layout, current: str, safety_backup: bool) -> int:
    """The live database did not answer `migrate --status`: go on only when the operator said so."""
    if safety_backup:
        raise BackupTaskError(
            f"[{remote.host.name}] the live database does not answer (the ops CLI's `migrate --status` failed; "
            f"to see why, run on the host: `{host_ops_command(remote.host.deploy_root, 'migrate', '--status')}`"
            "), so no safety backup can be taken; nothing was stopped. If the "
            "database is lost or corrupted, run the restore again with --no-safety-backup "
            "(docs/disaster-recovery.md); otherwise fix PostgreSQL first"
        )
    remote.say("restore: the live database does not answer; checking the backup against the release's code")
    return code_head_number(remote.query(code_migrations_command(lay, current)).stdout)


def new_safety_backup(before: dict, after: dict) -> str | None:
    """The safety backup a live restore took: the complete `safety` backup listed after it and not
    before (compared by id, so neither host's clock matters)."""
    known = {m["backup_id"] for m in before.get("complete", [])}
    taken = [
        m["backup_id"] for m in after.get("complete", []) if m.get("reason") == "safety" and m["backup_id"] not in known
    ]
    return max(taken) if taken else None


def restore_ledger_entry(
    who: str,
    when: str,
    state: cmd.HostState,
    hosts: list[str],
    duration_s: float,
    backup_id: str,
    safety_backup: str | None,
    error: str | None,
) -> ledger.LedgerEntry:
    """The ledger line of a live restore: the release that served, the backup, the safety backup."""
    current = state.current or ""
    commit = jsonlib.loads(state.metadata.get(current) or "{}").get("commit", "") if current else ""
    detail = f"restore failed: {' '.join(error.split())[:400]}" if error else ""
    return ledger.LedgerEntry(
        who=who,
        when=when,
        kind="restore",
        tag=ledger.release_tag(current) if current else "",
        commit=commit,
        release=current,
        hosts=hosts,
        duration_s=round(duration_s, 2),
        outcome="failed" if error else "ok",
        detail=detail,
        backup=backup_id,
        safety_backup=safety_backup,
    )


def _restore_live(session: Session, remote: Remote, backup_id: str, ops_args: list[str], safety_backup: bool) -> None:
    state = read_state(remote)
    lay, current = layout(remote), deployed_release(remote)
    status = remote.query(cmd.migrate_status_command(lay, current), check=False)
    if status.ok and status.stdout.strip():
        code_head = int(jsonlib.loads(status.stdout.strip().splitlines()[-1])["code_head_number"])
    else:
        code_head = _code_head_without_database(remote, lay, current, safety_backup)
    listing = _listing(remote, lay, current)
    manifest = next((m for m in listing["complete"] if m["backup_id"] == backup_id), None)
    if manifest is None:
        raise BackupTaskError(f"no complete backup {backup_id} (see `invoke backups`)")
    check_restorable_by_release(manifest.get("migration_head"), code_head)
    if not safety_backup:
        session.say(
            "restore: WARNING: --no-safety-backup: the live database is replaced WITHOUT a safety "
            "backup; whatever it holds now is lost"
        )

    session.say(f"restore: stopping the app on {len(session.remotes)} host(s) before replacing the live database")
    started, when = time.monotonic(), local_git.utc_now().isoformat(timespec="seconds")
    error: BaseException | None = None
    try:
        session.parallel(lambda r: r.run(stop_instances_command(layout(r), live_ports(r)), what="stop the app"))
        try:
            _ops_or_exit(remote, *ops_args)
            # An older backup is brought up to this release's schema so readiness can pass.
            _ops_or_exit(remote, "migrate")
        finally:
            # The deploy's own gated switch: start the current release, wait for /health/ready, then
            # point nginx at it. Done whether or not the restore worked (a failed one changed nothing).
            session.say("restore: starting the app again behind the health gate")
            session.parallel(lambda r: switch.switch_host(r, deployed_release(r)))
    except BaseException as failure:
        error = failure
        raise
    finally:
        _record_restore(session, remote, state, listing, backup_id, safety_backup, started, when, error)
    session.say(f"restore: live database restored from {backup_id}; the app is healthy on every host")


def _listing(remote: Remote, lay: cmd.Layout, current: str) -> dict:
    return jsonlib.loads(remote.query(cmd.ops_command(lay, current, "backups", "--json")).stdout)


def _record_restore(
    session: Session,
    remote: Remote,
    state: cmd.HostState,
    before: dict,
    backup_id: str,
    safety_backup: bool,
    started: float,
    when: str,
    error: BaseException | None,
) -> None:
    """Every live restore leaves a ledger line (the handoff and `releases` show it), even a failed one."""
    safety_id = None
    if safety_backup:
        try:
            safety_id = new_safety_backup(before, _listing(remote, layout(remote), state.current or ""))
        except Exception as listing_error:  # noqa: BLE001 - the ledger line matters more than the id
            session.say(f"restore: could not list the backups to name the safety backup: {listing_error}")
    message = None
    if error is not None:
        message = (str(error.message) if isinstance(error, Exit) and error.message else str(error)) or repr(error)
    entry = restore_ledger_entry(
        local_git.operator(),
        when,
        state,
        [r.host.name for r in session.remotes],
        time.monotonic() - started,
        backup_id,
        safety_id,
        message,
    )
    append_restore_line(session, entry)


def append_restore_line(session: Session, entry: ledger.LedgerEntry) -> None:
    """The ledger line of a live restore (a dump's or a point in time's). A failure to write it is
    said with the line itself, never raised: the restore's own outcome is the one that counts."""
    try:
        rollout.append_ledger(session, entry)
    except Exception as ledger_error:  # noqa: BLE001 - never hide the restore's own outcome
        session.say(f"restore: WARNING: could not write the ledger line ({ledger_error}): {ledger.format_entry(entry)}")


TASKS = [backup, backups, restore, verify_backup, prune_backups]

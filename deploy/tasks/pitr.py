"""Point-in-time recovery from the laptop: setup (`provision --pitr`), `restore --to-time/--to-latest`
into a scratch server, `verify-backup --pitr`, and `discard-restore` (runbook: docs/disaster-recovery.md).

The work happens on the database host (deploy/primary.py: the last failover's promoted host, else the
environment's first host; --host overrides): the host-side
PITR CLI (deploy/ops/pitr/cli.py) as PostgreSQL's account, and the release's ops CLI for the checks.
Every command comes from deploy/commands/pitr.py.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

from invoke import task

from deploy import local_git, switch
from deploy.commands import ops_command
from deploy.commands import pitr as pc
from deploy.dryrun import fold
from deploy.errors import DeployError
from deploy.ops.pitr.barman import parse_barman_time, parse_target_time
from deploy.primary import database_host
from deploy.session import Session, deployed_release, layout, live_ports, read_state
from deploy.ssh import Remote

FREE_PORT_COMMAND = (
    "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"
)
PITR_WINDOW = timedelta(days=7)


class PitrTaskError(DeployError):
    """A PITR request cannot be carried out as asked; the message says what to do instead."""


# -- pure helpers (unit-tested) --------------------------------------------------------------


def restore_request(to_time: str | None, to_latest: bool, backup: str | None, target: str | None = None) -> str | None:
    """The checked --to-time (None for --to-latest); refuses mixes before any SSH."""
    if to_time and to_latest:
        raise PitrTaskError("give --to-time TIME or --to-latest, not both")
    if backup:
        raise PitrTaskError("--backup restores a dump; --to-time/--to-latest replay the WAL archive: pick one")
    if target:
        raise PitrTaskError(
            "--target names a database for a dump; a point-in-time restore goes into a scratch server, or with "
            "--confirm-live over the live cluster"
        )
    if to_time:
        moment = parse_target_time(to_time)
        if moment > datetime.now(UTC):
            raise PitrTaskError(f"--to-time {to_time} is in the future")
        return moment.isoformat()
    return None


def live_steps(to_time: str | None, database_host: str, hosts: list[str], where: pc.PitrHost) -> list[str]:
    """Every step of a point-in-time restore over the live cluster, in order (--dry-run prints them)."""
    target, every = to_time or "the end of the archive", ", ".join(hosts)
    return [
        f"take the deploy lock on {every} (refused while a deploy, rollback, restore or freeze holds it)",
        f"[{database_host}] archive the current WAL segment (a marker commit; skipped when the cluster is down)",
        f"stop the app instances on {every}",
        f"[{database_host}] stop the live cluster: {where.pg_stop}",
        f"[{database_host}] move {where.data_dir} aside to {where.data_dir}.before-pitr-STAMP, lay the base backup "
        f"before {target} into {where.data_dir} (on a failure the old folder goes back)",
        f"[{database_host}] start the live cluster: {where.pg_start} (the old folder if the restore failed)",
        f"[{database_host}] wait until it replayed the WAL to {target} and promoted (a new timeline, archived)",
        f"[{database_host}] migrate up to the current release, then check the wallet invariants "
        "(on a failure the app stays stopped)",
        f"start the app on {every} behind the health gate",
        "write the ledger line; the old folder stays until `invoke discard-restore --data-dir` deletes it",
        f"[{database_host}] take a base backup on the new timeline",
    ]


def random_recent_time(backups: list[dict], marked_at: datetime, rng: random.Random) -> datetime:
    """A second between the oldest usable base backup's end (within a week) and the marker commit
    `close-segment` archived (every second up to it has a commit after it in the archive)."""
    ends = [parse_barman_time(b["end_time"]) for b in backups if b.get("status") == "DONE" and b.get("end_time")]
    if not ends:
        raise PitrTaskError("no finished base backup in the archive (provision --pitr takes the first)")
    # barman's end time has whole seconds: the next one is surely past the backup's consistent point.
    earliest = max(min(ends).replace(microsecond=0) + timedelta(seconds=1), marked_at - PITR_WINDOW)
    if earliest >= marked_at:
        return marked_at
    span = (marked_at - earliest).total_seconds()
    return (earliest + timedelta(seconds=rng.uniform(0, span))).replace(microsecond=0)


# -- running ---------------------------------------------------------------------------------


def read_archive_lag(remote: Remote, release_id: str | None) -> dict | None:
    """`archive-lag` of the release's ops CLI on the database host; None when it cannot tell."""
    if not release_id:
        return None
    result = remote.query(ops_command(layout(remote), release_id, "archive-lag"), check=False)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (result.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def pitr_host(session: Session, remote: Remote) -> pc.PitrHost:
    """The environment's PITR layout on `remote` (the inventory's database table, ADR 0046)."""
    return pc.PitrHost.from_database(session.environment.database.for_host(remote.host.name, remote.host.address))


def setup(session: Session, admin: Remote) -> None:
    """`provision --pitr`: the root setup on the database host (deploy/primary.py), through `admin`,
    that host logged into as the admin user."""
    remote, admin_user = next(r for r in session.remotes if r.host.name == admin.host.name), admin.host.ssh_user
    for command in pc.setup_commands(layout(remote), remote.host.ssh_user, pitr_host(session, remote)):
        wrapped = command if admin_user == "root" else f"sudo -n sh -c {pc.q(command)}"
        admin.run(wrapped, key=f"(as {admin_user}) {fold(command)}")


def close_segment(remote: Remote, host: pc.PitrHost) -> datetime | None:
    """Archive everything written so far (a marker commit, then a WAL switch); None when the cluster
    cannot (it is down: the restore goes on with what the archive already holds)."""
    result = remote.query(pc.close_segment_command(host), check=False)
    if result.exited != 0:
        why = (result.stderr.strip().splitlines() or ["no output"])[-1][:300]
        remote.say(f"could not archive the current WAL segment first ({why}); restoring from what is archived")
        return None
    closed = json.loads(result.stdout.strip().splitlines()[-1])
    remote.say(f"archived WAL up to {closed['marked_at']} (segment {closed['segment']}, {closed['seconds']}s)")
    return datetime.fromisoformat(closed["marked_at"])


def restore_scratch(remote: Remote, to_time: str | None, host: pc.PitrHost) -> dict:
    """Restore into a new scratch server on the host; returns the PITR CLI's JSON report."""
    port = int(remote.query(FREE_PORT_COMMAND).stdout.strip())
    data_dir = pc.scratch_dir(datetime.now(UTC).strftime("%Y%m%dT%H%M%S"), host)
    remote.say(f"restoring to {to_time or 'the end of the archive'} into {data_dir} (port {port})")
    restore = pc.restore_command(to_time, data_dir, port, host)
    report = json.loads(remote.query(restore).stdout.strip().splitlines()[-1])
    remote.say(
        f"restored base backup {report['backup_id']} + WAL to {report['target']} in {report['seconds']}s "
        f"(base backup {report['base_backup_seconds']}s, replay {report['replay_seconds']}s)"
    )
    return report


def check_scratch(remote: Remote, report: dict) -> dict:
    result = remote.query(pc.restored_checks_command(layout(remote), report["port"]), check=False)
    checks = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    if result.exited != 0 or not checks:
        raise PitrTaskError(
            f"the restored copy failed its checks: {result.stdout.strip()[-500:]} {result.stderr.strip()[-300:]}"
        )
    return checks


def _session(env: str | None, inventory: str | None, dry_run: bool = False) -> Session:
    from deploy.inventory import load_inventory

    return Session(load_inventory(inventory).environment(env), dry_run)


def _chosen(session: Session, host: str | None) -> Remote:
    return database_host(session, host)


def restore_to_point(env: str | None, inventory: str | None, host: str | None, to_time: str | None) -> None:
    """`invoke restore --to-time/--to-latest`: a scratch server the operator inspects, then discards."""
    with _session(env, inventory) as session:
        remote = _chosen(session, host)
        where = pitr_host(session, remote)
        close_segment(remote, where)
        report = restore_scratch(remote, to_time, where)
        checks = check_scratch(remote, report)
        remote.say(f"wallet invariants hold on the copy; rows: {json.dumps(checks['row_counts'], sort_keys=True)}")
        remote.say(
            f"the copy serves on 127.0.0.1:{report['port']} of {remote.host.name} (DATABASE_URL's role and password); "
            f"when done: invoke discard-restore --data-dir {report['data_dir']}"
        )


def verify_pitr(env: str | None, inventory: str | None, host: str | None) -> None:
    """`invoke verify-backup --pitr`: a random recent second, restored, checked, discarded."""
    with _session(env, inventory) as session:
        remote = _chosen(session, host)
        where = pitr_host(session, remote)
        marked_at = close_segment(remote, where)
        if marked_at is None:
            raise PitrTaskError("verify-backup --pitr needs the live cluster to archive a marker commit (see above)")
        backups = json.loads(remote.query(pc.backups_command(where)).stdout.strip().splitlines()[-1])["backups"]
        target = random_recent_time(backups, marked_at, random.SystemRandom())
        report = restore_scratch(remote, target.isoformat(), where)
        try:
            checks = check_scratch(remote, report)
        finally:
            remote.query(pc.discard_command(report["data_dir"], where), check=False)
        remote.say(
            f"verify-backup --pitr: OK at {target.isoformat()}: restored in {report['seconds']}s, "
            f"wallet invariants hold, {sum(checks['row_counts'].values())} rows in {len(checks['row_counts'])} tables"
        )


def restore_live(env: str | None, inventory: str | None, host: str | None, to_time: str | None, dry_run: bool):
    """`invoke restore --to-time/--to-latest --confirm-live`: the live cluster replaced, under the
    deploy lock, with the app stopped on every host, as a dump's live restore does."""
    from deploy.lock import Lock

    with _session(env, inventory, dry_run) as session:
        remote = _chosen(session, host)
        where = pitr_host(session, remote)
        steps = live_steps(to_time, remote.host.name, [r.host.name for r in session.remotes], where)
        if dry_run:
            for number, step in enumerate(steps, 1):
                session.say(f"would {number}. {step}")
            session.say("dry run: nothing changed")
            return
        with Lock(session, f"restore --to-time {to_time or 'latest'}"):
            _restore_live(session, remote, where, to_time)


def _restore_live(session: Session, remote: Remote, where: pc.PitrHost, to_time: str | None) -> None:
    # backup.py imports this module: its live-restore pieces are imported when used.
    from deploy.tasks.backup import append_restore_line, restore_ledger_entry, stop_instances_command

    state, stamp = read_state(remote), datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started, when = time.monotonic(), local_git.utc_now().isoformat(timespec="seconds")
    close_segment(remote, where)
    report: dict | None = None
    error: BaseException | None = None
    session.say(f"restore: stopping the app on {len(session.remotes)} host(s) before replacing the live cluster")
    try:
        session.parallel(lambda r: r.run(stop_instances_command(layout(r), live_ports(r))))
        remote.run(where.pg_stop)
        try:
            restored = remote.query(pc.restore_live_command(to_time, stamp, where))
            report = json.loads(restored.stdout.strip().splitlines()[-1])
        finally:
            remote.run(where.pg_start)  # the restored folder, or the old one put back
        remote.say(f"laid base backup {report['backup_id']} into {report['data_dir']}; replaying to {report['target']}")
        promoted = json.loads(remote.query(pc.wait_primary_command(where)).stdout.strip().splitlines()[-1])
        remote.say(f"replayed and promoted in {promoted['seconds']}s")
        release = deployed_release(remote)
        remote.run(ops_command(layout(remote), release, "migrate"))
        wallets = remote.query(ops_command(layout(remote), release, "check-wallets"), check=False)
        if wallets.exited != 0:
            raise PitrTaskError(
                f"the restored live database fails its wallet check, so the app stays stopped: "
                f"{wallets.stdout.strip()[-400:]} (the old data is in {report['aside']}; docs/disaster-recovery.md)"
            )
        session.say("restore: wallet invariants hold; starting the app again behind the health gate")
        session.parallel(lambda r: switch.switch_host(r, deployed_release(r)))
    except BaseException as failure:
        error = failure
        if report is None:  # the live data is as it was: the app comes back on it
            session.say("restore: the live data is unchanged; starting the app again behind the health gate")
            try:
                session.parallel(lambda r: switch.switch_host(r, deployed_release(r)))
            except Exception as restart:  # noqa: BLE001 - the restore's own failure is the one to raise
                session.say(f"restore: WARNING: the app did not come back ({restart}); run invoke health")
        raise
    finally:
        entry = restore_ledger_entry(
            local_git.operator(),
            when,
            state,
            [r.host.name for r in session.remotes],
            time.monotonic() - started,
            f"pitr {to_time or 'latest'}",
            report["aside"] if report else None,  # the ledger's safety copy: the old data folder
            None if error is None else (str(error) or repr(error)),
        )
        append_restore_line(session, entry)
    remote.say("taking a base backup on the new timeline (later restores start from it)")
    backup = remote.query(pc.base_backup_command(where), check=False)
    if backup.exited != 0:
        why = (backup.stderr.strip().splitlines() or ["no output"])[-1][:300]
        remote.say(f"WARNING: the base backup failed ({why}); the 01:30 cron job takes the next one")
    session.say(
        f"restore: live cluster restored to {report['target']}; the app is healthy on every host. The data as it "
        f"was is kept in {report['aside']}: when sure, invoke discard-restore --data-dir {report['aside']}"
    )


@task(
    help={
        "data_dir": "the scratch folder `restore --to-time/--to-latest` printed",
        "env": "environment of the inventory to act on (default: the inventory's default_environment)",
        "inventory": "inventory file (default: $CLICKNBACK_INVENTORY, else deploy/inventory.toml)",
        "host": "name of the host that holds the copy (default: the database host)",
    }
)
def discard_restore(c, data_dir, env=None, inventory=None, host=None):
    """Stop and delete a scratch point-in-time copy, or the live data a live point-in-time restore kept
    aside (refuses any folder the PITR CLI did not write)."""
    with _session(env, inventory) as session:
        remote = _chosen(session, host)
        remote.say(remote.query(pc.discard_command(data_dir, pitr_host(session, remote))).stdout.strip())


TASKS = [discard_restore]

"""A streaming standby built over SSH, and the failover to it (runbook: docs/disaster-recovery.md).

`build_standby` prepares the primary (replication role, pg_hba, firewall, slot) and rebuilds the
standby host's cluster as its hot standby, or only refreshes the primary's side when the host
already streams from it, so a rerun is harmless. `failover` fences the old primary, promotes the
standby, repoints every app host's DATABASE_URL and restarts the instances through the deploy's
gated switch, then writes a ledger line. Every command comes from deploy/commands/standby.py.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import replace

from deploy import ledger
from deploy.commands import standby as sc
from deploy.commands.pitr import PITR_CODE_DIR, PITR_ENV_FILE, SYSTEM_PYTHON
from deploy.database import DatabaseSettings
from deploy.errors import DeployError
from deploy.local_git import operator, utc_now
from deploy.ops.pitr.barman import wal_command
from deploy.ops.pitr.replication import lag_report
from deploy.primary import database_host, failover_detail
from deploy.session import Session, layout, read_state
from deploy.ssh import ConnectionFailed, HostKeyError, Remote


class StandbyError(DeployError):
    """A standby or failover cannot go ahead as asked; the message says why and what to do."""


def database(session: Session, remote: Remote) -> DatabaseSettings:
    return session.environment.database.for_host(remote.host.name, remote.host.address)


def role(remote: Remote, db: DatabaseSettings) -> sc.ClusterRole:
    return sc.parse_role(remote.query(sc.role_command(db)).stdout)


def upload_password(remote: Remote, password: str) -> str:
    """The password in a file only the SSH user reads (created empty with its mode before the write),
    in its home: SFTP and the shell both start there, and a database-only host has no deploy root."""
    path = f".clicknback-replication-{uuid.uuid4().hex}"
    remote.run(f"install -m 600 /dev/null {sc.q(path)}")
    remote.put_bytes(password.encode(), path)
    return path


def by_name(session: Session, name: str, flag: str) -> Remote:
    for remote in session.remotes:
        if remote.host.name == name:
            return remote
    names = ", ".join(r.host.name for r in session.remotes)
    raise StandbyError(f"{flag} {name}: no such host in environment {session.environment.name} (hosts: {names})")


def build_standby(
    session: Session, primary: Remote, standby: Remote, synchronous: bool, replace_data: bool = False
) -> str:
    """Make `standby` a hot standby of `primary` (idempotent); returns what was done, in words."""
    db, sdb = database(session, primary), database(session, standby)
    if primary is standby:
        raise StandbyError(f"{standby.host.name} is the primary: name another host with --host")
    current = role(primary, db)
    if current.kind != "primary":
        raise StandbyError(
            f"{primary.host.name}'s PostgreSQL is {current.kind}, not a running primary: name the primary "
            f"with --primary"
        )
    before = role(standby, sdb)
    if before.holds_data and not replace_data:
        state = f"{before.kind} {before.detail}".strip()
        raise StandbyError(
            f"{standby.host.name}'s PostgreSQL may hold data of its own ({state}): a standby build would erase it; "
            "if it is the old primary of a failover, rerun with --replace-data"
        )
    slot = sc.slot_name(standby.host.name)
    rebuild = not before.streams_from(primary.host.address)
    password = secrets.token_urlsafe(32)
    primary.run(sc.replication_role_command(db, upload_password(primary, password)))
    primary.run(sc.hba_command(db, sc.hba_line(db, standby.host.address)))
    primary.run(sc.monitor_grant_command(db))
    primary.run(sc.listen_command(db))
    firewall = sc.firewall_command(db, standby.host.address)
    if firewall:
        primary.run(firewall)
    standby.run(sc.passfile_command(sdb, upload_password(standby, password)))
    if rebuild:
        standby.run(f"{sdb.stop} || true")
        if not standby.dry_run and role(standby, sdb).kind in ("primary", "standby"):
            raise StandbyError(f"{standby.host.name}'s PostgreSQL still runs after `{sdb.stop}`: stop it and rerun")
        primary.run(sc.drop_idle_slot_command(db, slot))
        standby.run(sc.wipe_command(sdb))
        standby.run(sc.base_backup_command(sdb, primary.host.address, slot))
        has_archive = standby.query(sc.as_owner(sdb, f"test -r {PITR_ENV_FILE}"), check=False).ok
        fetch = wal_command(SYSTEM_PYTHON, PITR_CODE_DIR, PITR_ENV_FILE, "fetch") if has_archive else None
        standby.run(sc.append_conf_command(sdb, sc.standby_conf(sdb, primary.host.address, slot, fetch)))
        standby.run(sc.start_built_command(sdb))
    # Ready to serve the other app hosts once promoted (pg_hba.conf is the host's, not copied).
    for other in session.remotes:
        if other is not standby:
            standby.run(sc.hba_command(sdb, sc.app_hba_line(other.host.address)))
            opening = sc.firewall_command(sdb, other.host.address)
            if opening:
                standby.run(opening)
    primary.run(sc.wait_streaming_command(db, slot))
    primary.run(sc.synchronous_command(db, slot if synchronous else None))
    mode = "synchronous" if synchronous else "asynchronous"
    done = "rebuilt from a fresh base backup" if rebuild else "already streaming; primary side refreshed"
    if standby.dry_run:
        return (
            f"dry run: {standby.host.name} would be a hot standby of {primary.host.name} ({mode}, slot {slot}), {done}"
        )
    return f"{standby.host.name} is a hot standby of {primary.host.name} ({mode}, slot {slot}): {done}"


def read_replication(session: Session) -> dict:
    """Replication lag (bytes, seconds) of the primary's standbys, flagged by replication.lag_report;
    {"error": ...} when it cannot be read (no cluster on the hosts, no sudo rule, none reachable)."""
    try:
        primary = find_primary(session)
        result = primary.query(sc.replication_lag_command(database(session, primary)), check=False)
    except StandbyError:
        return {"error": "no host runs a primary as the inventory's database table describes it"}
    except (ConnectionFailed, HostKeyError) as error:
        return {"error": str(error).splitlines()[0][:200]}
    try:
        return lag_report(json.loads(result.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"error": (result.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def find_primary(session: Session, other_than: Remote | None = None) -> Remote:
    """The first host whose cluster runs as a primary, the database host (deploy/primary.py) asked first."""
    holder = database_host(session)
    for remote in [holder, *(r for r in session.remotes if r is not holder)]:
        if remote is not other_than and reachable(remote) and role(remote, database(session, remote)).kind == "primary":
            return remote
    raise StandbyError("no reachable host runs a primary PostgreSQL: name it with --primary")


def reachable(remote: Remote) -> bool:
    try:
        remote.connection  # noqa: B018 - opens the SSH connection, reused by every later command
    except (ConnectionFailed, HostKeyError) as error:
        remote.say(f"unreachable: {str(error).splitlines()[0]}")
        return False
    return True


def find_standby(session: Session, primary: Remote, up: list[Remote]) -> Remote:
    found = [r for r in up if r is not primary and role(r, database(session, r)).kind == "standby"]
    if len(found) != 1:
        which = ", ".join(r.host.name for r in found) or "none"
        raise StandbyError(
            f"failover needs exactly one standby among the reachable hosts (found: {which}): name it with --standby"
        )
    return found[0]


def failover(session: Session, primary_name: str | None, standby_name: str | None) -> str:
    """Fence, promote, repoint, restart gated, record. The old primary may be unreachable (it died):
    when it is back, `invoke standby --host <old primary> --replace-data` rebuilds it.
    Every step may run again, so an interrupted failover is finished by rerunning it with --standby."""
    from deploy.rollout import append_ledger
    from deploy.switch import switch_all

    started = time.monotonic()
    primary = by_name(session, primary_name, "--primary") if primary_name else database_host(session)
    up = [r for r in session.remotes if reachable(r)]
    standby = by_name(session, standby_name, "--standby") if standby_name else find_standby(session, primary, up)
    if standby is primary:
        raise StandbyError(f"--standby {standby.host.name} is the old primary: name the standby to promote")
    if standby not in up:
        raise StandbyError(f"the standby {standby.host.name} is unreachable: nothing was changed")
    db = database(session, standby)
    state = role(standby, db)
    # A failover stopped after the promotion is finished by naming the promoted host again.
    resumed = state.kind == "primary" and standby_name is not None
    if state.kind != "standby" and not resumed:
        raise StandbyError(f"{standby.host.name}'s PostgreSQL is {state.kind}, not a standby: nothing was changed")
    if primary in up:
        primary.say(f"fencing: stop PostgreSQL, standby.signal, read-only, following {standby.host.name}")
        primary.run(sc.fence_command(database(session, primary), standby.host.address))
        fenced = "fenced"
    else:
        session.say(
            f"{primary.host.name} is unreachable: not fenced now; rebuild it with `invoke standby` before it serves"
        )
        fenced = "unreachable, not fenced"
    if resumed:
        standby.say("already the primary (an earlier failover promoted it): repointing and restarting")
    else:
        standby.say("promoting the standby")
        standby.run(sc.promote_command(db))
    apps = Session(replace(session.environment, hosts=tuple(r.host for r in up)), session.dry_run, session.out)
    apps.remotes = up
    states = {r.host.name: read_state(r) for r in up}
    for remote in up:
        env_file = layout(remote).env_file
        socket_dir = db.socket_dir if remote is standby else ""  # the primary's own host: its socket
        where = f"{socket_dir} (port {db.port})" if socket_dir else f"{standby.host.address}:{db.port}"
        remote.run(
            sc.repoint_command(remote.host.python, env_file, standby.host.address, db.port, socket_dir),
            what=f"repoint DATABASE_URL in {env_file} to {where}",
            key="python3 -c <rewrite DATABASE_URL's host and port in the env file>",
        )
    deployed = [r for r in up if states[r.host.name].current]
    apps.remotes = deployed
    if deployed:
        failures = switch_all(apps, states, {r.host.name: str(states[r.host.name].current) for r in deployed})
        if failures:
            raise StandbyError(
                f"{standby.host.name} is the primary and every DATABASE_URL names it, but the restart's health gate "
                f"failed on {', '.join(f.host.name for f in failures)} (the old instances still serve, on the fenced "
                "database): fix the cause, then `invoke deploy --tag` the current tag to restart them"
            )
    detail = failover_detail(primary.host.name, fenced, standby.host.name)
    release = str(states[deployed[0].host.name].current) if deployed else ""
    entry = ledger.LedgerEntry(
        who=operator(),
        when=utc_now().isoformat(timespec="seconds"),
        kind="failover",
        tag=ledger.release_tag(release),
        commit="",
        release=release,
        hosts=[r.host.name for r in deployed],
        duration_s=round(time.monotonic() - started, 1),
        outcome="ok",
        detail=detail,
    )
    if deployed:
        append_ledger(apps, entry)
    return detail

"""Invoke tasks: provision, deploy, rollback, releases, health, logs, lock, sandbox.

Each task is a thin wrapper: it loads the inventory, opens one SSH session per host and calls
deploy.rollout, deploy.provision or deploy.session, which run the commands deploy.commands builds.
See docs/deploy.md and docs/rollback.md for the runbooks.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from invoke import Exit, task

from deploy import commands as cmd
from deploy import interrupts, ledger, local_git, rollout
from deploy.errors import DeployError
from deploy.inventory import load_inventory
from deploy.lock import FREEZE, Lock, describe_holder, freeze_message
from deploy.ops.pitr.lag import archive_line
from deploy.primary import database_host
from deploy.provision import provision as provision_hosts
from deploy.provision import provision_system
from deploy.session import HostResult, Session, host_live_ports, layout, ledger_entries, read_state
from deploy.ssh import ConnectionFailed, HostKeyError, RemoteCommandError
from deploy.tasks import OperatorTask
from deploy.tasks import pitr as pitr_tasks

COMMON_HELP = {
    "env": "environment of the inventory to act on (default: the inventory's default_environment)",
    "inventory": "inventory file (default: $CLICKNBACK_INVENTORY, else deploy/inventory.toml)",
}
DRY_RUN_HELP = (
    "print each step that would change the hosts, one line per step per host (--verbose: the exact "
    "commands); change nothing"
)
VERBOSE_HELP = "with --dry-run: print the exact remote commands, whole, after each step's line"
LOCK_DRY_RUN_HELP = "print what would change on each host, one line per host; change nothing"


def _help(**extra: str) -> dict[str, str]:
    return {**COMMON_HELP, **extra}


def _session(
    env: str | None, inventory: str | None, dry_run: bool = False, out: IO[str] | None = None, verbose: bool = False
) -> Session:
    """`out`: where the hosts' progress lines go (stderr when stdout carries a --json document)."""
    environment = load_inventory(inventory).environment(env)
    return Session(environment, dry_run=dry_run, out=out or sys.stdout, verbose=verbose)


@contextmanager
def interrupted_exits() -> Iterator[None]:
    """SIGINT or SIGTERM during the block puts the hosts back (deploy.interrupts) and ends the task
    with one line and the shell's status for that signal (130 for SIGINT, 143 for SIGTERM)."""
    with interrupts.guard():
        try:
            yield
        except interrupts.Interrupted as stop:
            interrupts.ignore_until_exit()  # the hosts are back: one more Ctrl-C must not change the status
            raise Exit(f"ERROR: {stop}", code=stop.exit_code) from None


def report_failed_hosts(session: Session, results: list[HostResult]) -> list[str]:
    """Print one line per host a read-only report could not read; returns their names."""
    failed = [result for result in results if not result.ok]
    for result in failed:
        session.say(f"== {result.remote.host.name} ({result.remote.host.address}): {result.status}: {result.problem}")
    return [result.remote.host.name for result in failed]


def exit_if_hosts_failed(failed: list[str], what: str) -> None:
    if failed:
        raise Exit(f"ERROR: {what} is incomplete: could not read {', '.join(failed)} (see above)", code=1)


@task(
    help=_help(
        env_file="local file uploaded as <deploy_root>/shared/.env (mode 0600, never printed); "
        "optional once the host has one",
        system="first run the one-time root setup (apt packages, deploy user and its SSH key, PostgreSQL "
        "role and database, firewall) as --admin-user; try it with --dry-run first",
        database="PostgreSQL role and database name for --system (default clicknback)",
        admin_user="SSH user for --system: root, or a sudoer (the deploy user may not exist yet); default root",
        pitr="also set up WAL archiving and daily base backups on the database host, as --admin-user (needs a "
        "deployed release and the S3_* settings in the secrets file; docs/disaster-recovery.md)",
        dry_run=DRY_RUN_HELP,
        verbose=VERBOSE_HELP,
    )
)
def provision(
    c,
    env=None,
    inventory=None,
    env_file=None,
    system=False,
    database="clicknback",
    admin_user="root",
    pitr=False,
    dry_run=False,
    verbose=False,
):
    """Prepare hosts (idempotent): deploy-root layout, secrets file, supervisor, nginx, crontab."""
    data = local_git.read_env_file(Path(env_file).expanduser()) if env_file else None
    with _session(env, inventory, dry_run, verbose=verbose) as session, session.as_user(admin_user) as admin:
        # Every login this run needs is opened before the first change. With --system the deploy
        # user may not exist yet: its logins are checked after the (idempotent) root setup.
        if system:
            provision_system(admin, database)  # opens every admin login first
        admin_db = None
        if pitr:  # PITR lives on the database host (deploy/primary.py), reached as the admin
            holder = database_host(session).host.name
            admin_db = next(r for r in admin.remotes if r.host.name == holder)
            if not system and not dry_run:
                admin.parallel(lambda remote: remote.connection, [admin_db])  # the one --pitr needs
        provision_hosts(session, data)
        if admin_db is not None:
            pitr_tasks.setup(session, admin_db)
        session.say(
            f"would provision {len(session.remotes)} host(s) (dry run: nothing changed)"
            if dry_run
            else f"provisioned {len(session.remotes)} host(s)"
        )


@task(
    help=_help(
        tag="git tag to deploy (must exist locally; branches and bare commits are refused)",
        repo="git repository the tag comes from (default: the current directory)",
        dry_run=DRY_RUN_HELP,
        verbose=VERBOSE_HELP,
    )
)
def deploy(c, tag, env=None, inventory=None, repo=".", dry_run=False, verbose=False):
    """Deploy a git tag to every host: lock, upload, migrate once, health-gated switch, ledger, prune."""
    with _session(env, inventory, dry_run, verbose=verbose) as session, interrupted_exits():
        outcome = rollout.deploy(session, Path(repo).resolve(), tag)
        session.say(outcome.message + (" (dry run: nothing changed)" if dry_run else ""))


@task(
    help=_help(
        to="tag to roll back to (default: the release that was live before the current one, by the ledger, "
        "skipping releases marked bad or pruned; `invoke releases` shows it as `previous`)",
        downgrade="undo database migrations newer than the target first (with the current release's code)",
        dry_run=DRY_RUN_HELP,
        verbose=VERBOSE_HELP,
    )
)
def rollback(c, to=None, downgrade=False, env=None, inventory=None, dry_run=False, verbose=False):
    """Switch every host back to the release that was live before the current one, by the ledger (or
    --to TAG): no reinstall, health-gated; marks the release rolled away from bad."""
    if to is not None:
        try:
            cmd.check_tag(to)  # the rule deploy applies: nothing else reaches the hosts
        except ValueError as error:
            raise Exit(f"ERROR: --to: {error}", code=1) from None
    with _session(env, inventory, dry_run, verbose=verbose) as session, interrupted_exits():
        outcome = rollout.rollback(session, to, downgrade)
        session.say(outcome.message + (" (dry run: nothing changed)" if dry_run else ""))


@task(help=_help())
def releases(c, env=None, inventory=None):
    """Show the releases on every host (current, previous good, bad) and the recent ledger (deploys,
    rollbacks, live restores)."""
    with _session(env, inventory) as session:
        results = session.each(read_state)
        for result in results:
            if not result.ok:
                continue
            remote, state = result.remote, result.value
            current, ids = state.current, state.releases
            entries = ledger_entries(state)
            bad = ledger.bad_releases(entries)
            previous = ledger.default_rollback_target(entries, ids, current)
            session.say(f"== {remote.host.name} ({remote.host.address}) {remote.host.deploy_root}")
            session.say(f"   {'RELEASE':34} {'STATE':9} {'LAST OUTCOME':28} WHO")
            for rel_id in reversed(ids):
                state = (
                    "current"
                    if rel_id == current
                    else "previous"
                    if rel_id == previous
                    else "bad"
                    if rel_id in bad
                    else ""
                )
                last = ledger.last_entry_for(entries, rel_id)
                outcome = f"{last.kind} {last.outcome} {last.duration_s:.1f}s" if last else "-"
                session.say(f"   {rel_id:34} {state:9} {outcome:28} {last.who if last else '-'}")
            session.say("   ledger (newest last):")
            for entry in entries[-10:]:
                note = ledger.entry_note(entry) if entry.kind in ledger.NOT_RELEASES else ""
                session.say(
                    f"   {entry.when} {entry.kind:8} {entry.tag:12} {entry.outcome:11} "
                    f"{entry.duration_s:6.1f}s {','.join(entry.hosts)} by {entry.who}" + (f": {note}" if note else "")
                )
        failed = report_failed_hosts(session, results)
    exit_if_hosts_failed(failed, "the releases report")


@task(help=_help())
def health(c, env=None, inventory=None):
    """Probe /health/live and /health/ready of every instance, and readiness through nginx, on every host."""
    failures = 0
    with _session(env, inventory) as session:

        def probe(remote):
            host, state = remote.host, read_state(remote)
            urls = []
            for port in host_live_ports(remote, state):
                urls += [
                    (f"{cmd.program_name(port)} live", host.live_url_for(port)),
                    (f"{cmd.program_name(port)} ready", host.ready_url_for(port)),
                ]
            urls.append(("nginx ready", cmd.nginx_ready_url(host)))
            return state.current, [
                (name, url, remote.query(cmd.probe_command(url), check=False).stdout.strip()) for name, url in urls
            ]

        results = session.each(probe)
        for result in results:
            if not result.ok:
                continue
            remote, (current, rows) = result.remote, result.value
            current = current or "(nothing deployed)"
            session.say(f"== {remote.host.name}: current {current}")
            for name, url, answer in rows:
                status = answer.split(" ", 1)[0]
                healthy = status == "200"
                failures += not healthy
                session.say(f"   {'OK  ' if healthy else 'FAIL'} {name:16} {url} -> {answer[:200]}")
        holder = database_host(session) if any(r.ok for r in results) else None
        held = [r for r in results if r.ok and r.remote is holder]
        if held:  # the database host holds the database and its WAL archive
            line, failed = archive_line(pitr_tasks.read_archive_lag(held[0].remote, held[0].value[0]))
            failures += failed
            session.say(f"== database: {line}")
        unreachable = report_failed_hosts(session, results)
    if failures or unreachable:
        parts = [f"{failures} probe(s) failed"] if failures else []
        parts += [f"could not probe {', '.join(unreachable)}"] if unreachable else []
        raise Exit("ERROR: " + "; ".join(parts), code=1)


@task(
    help=_help(
        follow="keep streaming new lines until Ctrl-C; exits 1 if a host cannot be reached",
        lines="lines of history per instance (default 50)",
        all_slots="every instance slot, the stopped standby ones too (a failed deploy's instances), with what "
        "supervisor captured of their output (tracebacks before logging starts); default: the live instances",
    )
)
def logs(c, follow=False, lines=50, all_slots=False, env=None, inventory=None):
    """Print the live app instances' JSON logs from every host, each line prefixed with the host."""
    errors = []  # the hosts whose stream failed, reported after every stream ended
    reader_gone: list[BrokenPipeError] = []  # stdout's reader left (`| head`): stop quietly
    with _session(env, inventory) as session:

        def tail(remote):
            try:
                # A stopped standby slot's log only repeats a past run: the live ones by default.
                ports = remote.host.all_ports if all_slots else host_live_ports(remote, read_state(remote))
                command = cmd.tail_logs_command(layout(remote), ports, lines, follow, with_output=all_slots)
                return remote.stream(command)
            except (ConnectionFailed, HostKeyError, RemoteCommandError, DeployError) as error:
                # Collected, not raised: a worker thread's exception would only be printed (exit 0).
                errors.append(error)
            except BrokenPipeError as error:
                reader_gone.append(error)
            return None

        if not follow:
            session.parallel(tail)
        else:
            threads = [threading.Thread(target=tail, args=(remote,), daemon=True) for remote in session.remotes]
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    thread.join()
            except KeyboardInterrupt:
                session.say("stopped following")
    if reader_gone:
        raise reader_gone[0]  # OperatorTask ends the task quietly
    if errors:
        raise Exit("\n".join(f"ERROR: {str(error).strip().splitlines()[0]}" for error in errors), code=1)


@task(
    help=_help(
        status="show who holds the deploy lock on every host (the default)",
        release="remove the deploy lock on every host (a freeze, or a lock whose holder is really gone)",
        acquire="take the deploy lock on every host to freeze deploys, rollbacks and live restores on "
        "purpose (needs --message); they refuse, naming the reason, until `lock --release`",
        message="with --acquire: why deploys are frozen (one line, shown to whoever tries one)",
        dry_run=LOCK_DRY_RUN_HELP,
    )
)
def lock(c, status=False, release=False, acquire=False, message=None, env=None, inventory=None, dry_run=False):
    """Show, take on purpose (freeze deploys) or forcibly release the deploy lock (state/deploy.lock)
    on every host."""
    if acquire and release:
        raise Exit("ERROR: lock takes --acquire or --release, not both", code=1)
    if message is not None and not acquire:
        raise Exit("ERROR: --message goes with --acquire (the reason of a freeze)", code=1)
    if acquire:
        try:
            reason = freeze_message(message)
        except ValueError as error:
            raise Exit(f"ERROR: {error}", code=1) from None
        with _session(env, inventory, dry_run) as session:
            session.connect()  # every host reachable before the first one is frozen
            Lock(session, FREEZE, message=reason).acquire()
            done = "would freeze" if dry_run else "froze"
            session.say(f"{done} deploys on {len(session.remotes)} host(s): {reason}; `invoke lock --release` lifts it")
        return
    with _session(env, inventory, dry_run) as session:
        for remote in session.remotes:
            holder = remote.query(cmd.lock_status_command(layout(remote))).stdout.strip()
            session.say(f"[{remote.host.name}] " + (f"held by {describe_holder(holder)}" if holder else "free"))
            if release and holder:
                remote.run(cmd.lock_release_command(layout(remote), None), what="release the deploy lock")
                if not dry_run:
                    session.say(f"[{remote.host.name}] released")


@task(
    klass=OperatorTask,
    positional=["action"],
    help={
        "action": "up (start or resume the local VPS hosts) or down (stop them and delete their state)",
        "base_dir": "where the sandbox keeps its state (default .local/sandbox)",
        "database_pair": "up: a PostgreSQL cluster on each host (for standby, failover, drill --failover); remembered",
    },
)
def sandbox(c, action, base_dir=".local/sandbox", database_pair=False):
    """A local two-host VPS on this machine (sshd on 127.0.0.2/127.0.0.3, PostgreSQL, S3) to try deploys."""
    from devtools import sandbox as sandbox_module

    if action == "up":
        sandbox_module.up(Path(base_dir), database_pair=bool(database_pair))
    elif action == "down":
        sandbox_module.down(Path(base_dir))
    else:
        raise Exit("sandbox: action must be `up` or `down`", code=2)


TASKS = [provision, deploy, rollback, releases, health, logs, lock, sandbox]

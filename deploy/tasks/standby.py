"""Invoke tasks: standby and failover (runbook: docs/disaster-recovery.md; the work: deploy/standby.py)."""

from __future__ import annotations

from invoke import task

from deploy.standby import build_standby, by_name, find_primary
from deploy.standby import failover as run_failover
from deploy.tasks.release import COMMON_HELP, DRY_RUN_HELP, VERBOSE_HELP, _session

HELP = {**COMMON_HELP, "dry_run": DRY_RUN_HELP + " (the reads still run)", "verbose": VERBOSE_HELP}


@task(
    help={
        "host": "name of the host to build as the hot standby (its cluster is emptied and copied)",
        "primary": "name of the primary's host (default: the host whose PostgreSQL runs as a primary, the "
        "database host asked first)",
        "synchronous": "commits wait for this standby (no acknowledged write lost; each commit pays a round trip)",
        "replace_data": "empty --host's cluster even when it holds data or would start as a primary (the old "
        "primary of a failover that could not fence it: its copy has diverged)",
        **HELP,
    }
)
def standby(
    c, host, primary=None, synchronous=False, replace_data=False, env=None, inventory=None, dry_run=False, verbose=False
):
    """Build --host as a streaming hot standby of the primary (slot, WAL archive as fallback); a rerun is harmless."""
    with _session(env, inventory, dry_run, verbose=verbose) as session:
        chosen = by_name(session, host, "--host")
        source = by_name(session, primary, "--primary") if primary else find_primary(session, other_than=chosen)
        session.say(build_standby(session, source, chosen, bool(synchronous), bool(replace_data)))


@task(
    help={
        "primary": "name of the failed primary's host (default: the database host: the last failover's "
        "promoted host, else the environment's first host)",
        "standby": "name of the standby to promote (default: the one reachable host whose PostgreSQL is a standby)",
        **HELP,
    }
)
def failover(c, primary=None, standby=None, env=None, inventory=None, dry_run=False, verbose=False):
    """Fence the old primary, promote the standby, repoint every DATABASE_URL, restart gated, record it."""
    with _session(env, inventory, dry_run, verbose=verbose) as session:
        detail = run_failover(session, primary, standby)
        session.say(
            f"failover {'planned' if dry_run else 'done'}: {detail}. Next: `invoke standby --host <old primary>` "
            "rebuilds it as the standby; the tasks find the new primary in the ledger (no inventory edit)"
        )


TASKS = [standby, failover]

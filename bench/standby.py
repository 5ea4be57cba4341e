"""`--standby async|sync`: the bench's PostgreSQL with a streaming standby, to measure what
`invoke standby --synchronous` costs the API (issue #25; docs/disaster-recovery.md).

The standby is built the way `invoke standby` builds one (deploy/standby.py): pg_basebackup with a
physical replication slot, production's standby settings appended (deploy/commands/standby.py's
standby_conf), and for `sync` the primary's synchronous_standby_names naming it
(replication.synchronous_sql). It is a second throwaway cluster on loopback, with production's
durability, so a synchronous commit waits for the standby's own flush to disk.

On one machine the standby's WAL receiver and replay share the 2 cores with the service, and the
round trip is loopback's: the figures price the protocol and the standby's flush, not a network.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from deploy.commands import standby as production
from deploy.database import DatabaseSettings
from deploy.ops.pitr import replication
from devtools.local_postgres import (
    PRODUCTION_DURABILITY,
    SUPERUSER,
    LocalPostgres,
    LocalPostgresError,
    _demote_kwargs,
    give_to_cluster_user,
)

MODES = ("none", "async", "sync")
SLOT = production.slot_name("bench")
BASE_BACKUP_SECONDS = 3600  # the 10-million-purchase cluster is several GB
STREAMING_SECONDS = 60.0


def label(mode: str) -> str:
    """The header's words for the mode; empty for none."""
    if mode == "sync":
        return "streaming standby, synchronous (each commit waits for the standby's flush)"
    if mode == "async":
        return "streaming standby, asynchronous"
    return ""


def build(
    primary: LocalPostgres, base: Path, slot: str = SLOT, restore_command: str | None = None, start_options: str = ""
) -> LocalPostgres:
    """A hot standby of `primary` under `base` (which must not exist), started and returned."""
    base.mkdir(parents=True)
    (base / "run").mkdir()
    give_to_cluster_user(base)
    give_to_cluster_user(base / "run")
    argv = replication.base_backup_argv(
        str(primary.bindir), primary.host, primary.port, SUPERUSER, str(base / "data"), slot
    )
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=BASE_BACKUP_SECONDS, cwd="/", **_demote_kwargs()
    )
    if result.returncode != 0:
        raise LocalPostgresError(f"pg_basebackup failed: {result.stderr.strip()}")
    # Production runs every cluster on one port, so standby_conf's conninfo names the settings' port:
    # here that is the primary's. The passfile it names does not exist; the loopback cluster trusts.
    settings = DatabaseSettings(data_dir=str(base / "data"), port=primary.port, replication_user=SUPERUSER)
    with open(base / "data" / "postgresql.auto.conf", "a") as conf:
        conf.write(production.standby_conf(settings, primary.host, slot, restore_command))
    standby = LocalPostgres(base)
    standby.start(start_options)
    return standby


def attach(primary: LocalPostgres, slot: str, synchronous: bool, timeout: float = STREAMING_SECONDS) -> None:
    """Set the primary's synchronous_standby_names for the mode, then wait (bounded) until the standby
    streams in it: a measurement must not start while the standby still catches up."""
    for sql in replication.synchronous_sql(slot if synchronous else None):
        primary.psql(sql)
    wanted = "streaming|sync" if synchronous else "streaming|async"
    query = f"SELECT state || '|' || sync_state FROM pg_stat_replication WHERE application_name = '{slot}'"
    deadline = time.monotonic() + timeout
    while (state := primary.psql(query)) != wanted:
        if time.monotonic() > deadline:
            raise LocalPostgresError(f"the standby {slot} was not {wanted} after {timeout:.0f}s (it was {state!r})")
        time.sleep(0.1)  # poll interval; the loop waits on the standby's state itself


def start(primary: LocalPostgres, base: Path, mode: str) -> LocalPostgres | None:
    """The bench's standby for `mode` (None for none), with production's durability, streaming."""
    if mode == "none":
        return None
    try:
        standby = build(primary, base, start_options=PRODUCTION_DURABILITY)
        attach(primary, SLOT, synchronous=mode == "sync")
    except BaseException:  # Ctrl-C included: a standby started before it must not outlive the bench
        if (base / "data" / "PG_VERSION").exists():
            LocalPostgres(base).destroy()
        raise
    return standby

"""Streaming replication: building a hot standby, its lag, promotion, and fencing an old primary.

Pure builders (unit-tested); the integration test and the future `invoke standby` / `invoke
failover` tasks run them. PostgreSQL's own machinery does the work: pg_basebackup --write-recovery-conf
with a physical replication slot (the primary keeps the WAL its standby still needs), and the WAL
archive as the fallback restore_command when the slot is gone or the standby fell too far behind.
"""

from __future__ import annotations

import re

from deploy.ops.pitr.barman import sql_literal

SLOT_PATTERN = re.compile(r"^[a-z0-9_]{1,63}$")

# On the primary. The LSN columns of pg_stat_replication are NULL for a role without pg_monitor.
REPLICATION_LAG_SQL = """
SELECT application_name, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
       coalesce(extract(epoch FROM replay_lag), 0)::float8 AS lag_s
FROM pg_stat_replication ORDER BY application_name
"""


class ReplicationError(ValueError):
    """A standby or failover request is malformed; the message says which part."""


def check_slot(name: str) -> str:
    if not SLOT_PATTERN.match(name):
        raise ReplicationError(f"a standby name takes lower-case letters, digits and _ (max 63), got {name!r}")
    return name


def base_backup_argv(bindir: str, host: str, port: int, user: str, data_dir: str, slot: str) -> list[str]:
    """A copy of the primary that starts as its standby: recovery settings written, slot created."""
    return [
        f"{bindir}/pg_basebackup",
        "--host",
        host,
        "--port",
        str(port),
        "--username",
        user,
        "--pgdata",
        data_dir,
        "--wal-method=stream",
        "--write-recovery-conf",
        "--create-slot",
        "--slot",
        check_slot(slot),
        "--checkpoint=fast",
        "--no-password",
    ]


def standby_settings(slot: str, restore_command: str | None) -> dict[str, str]:
    """Appended to the standby's postgresql.auto.conf after pg_basebackup's primary_conninfo.

    application_name = the slot's name, so synchronous_standby_names can name this standby.
    """
    settings = {"hot_standby": "on", "cluster_name": check_slot(slot)}
    if restore_command:
        settings["restore_command"] = restore_command  # the archive: fallback when streaming cannot serve
    return settings


def conninfo_with_application_name(conninfo: str, name: str) -> str:
    return f"{conninfo} application_name={check_slot(name)}"


def synchronous_sql(slot: str | None) -> list[str]:
    """Make commits wait for this standby (None: back to asynchronous)."""
    value = f"FIRST 1 ({check_slot(slot)})" if slot else ""
    return [f"ALTER SYSTEM SET synchronous_standby_names = {sql_literal(value)}", "SELECT pg_reload_conf()"]


def promote_sql(wait_seconds: int = 60) -> str:
    return f"SELECT pg_promote(wait => true, wait_seconds => {int(wait_seconds)})"


def fence_settings(new_primary_conninfo: str) -> dict[str, str]:
    """An old primary that comes back must follow the new one, read-only, never take writes.

    Written with standby.signal into its data folder before it can start again: PostgreSQL then
    starts in recovery whatever its earlier role (and refuses to stream if its timeline diverged,
    which is the signal to rebuild it with `invoke standby`).
    """
    return {"primary_conninfo": new_primary_conninfo, "default_transaction_read_only": "on"}


def lag_report(rows: list[dict], max_lag_bytes: int = 16 * 1024 * 1024, max_lag_s: float = 60.0) -> dict:
    """Each standby's lag in bytes and seconds, flagged past the thresholds; none at all is flagged too."""
    standbys = []
    for row in rows:
        # Seconds are a float: PostgreSQL's JSON writes a float8 of 0 (no replay yet) as `0`, an int.
        seconds = float(row.get("lag_s") or 0)
        late = (row.get("lag_bytes") or 0) > max_lag_bytes or seconds > max_lag_s
        status = "late" if late or row.get("state") != "streaming" else "ok"
        standbys.append({**row, "lag_s": seconds, "status": status})
    status = "none" if not standbys else ("ok" if all(s["status"] == "ok" for s in standbys) else "late")
    return {"status": status, "standbys": standbys}

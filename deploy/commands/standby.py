"""Shell commands for a streaming standby and a failover, run over SSH on the database hosts (pure).

The PostgreSQL work comes from deploy/ops/pitr/replication.py (pg_basebackup with a slot, promotion,
fencing); this module wraps it in commands for a host whose cluster is described by the inventory's
database table (deploy/database.py). No secret is ever part of a command: the replication password
travels as a file uploaded over SFTP, read by the shell and removed, so a failed command's report
and --dry-run can print every command whole.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from deploy.commands.layout import q
from deploy.database import DatabaseSettings
from deploy.ops.pitr import replication
from deploy.ops.pitr.barman import config_lines, sql_literal

STREAMING_TIMEOUT_SECONDS = 120
PROMOTE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class ClusterRole:
    """What a host's cluster is now, as role_command reports it."""

    kind: str  # absent | down | fenced | primary | standby
    detail: str = ""  # primary: how many app databases; standby: the WAL receiver's status and sender

    @property
    def holds_data(self) -> bool:
        """A running primary with databases of its own, or a stopped cluster that would start as one."""
        return (self.kind == "primary" and self.detail not in ("", "0")) or self.kind == "down"

    def streams_from(self, address: str) -> bool:
        return self.kind == "standby" and self.detail == f"streaming {address}"


def parse_role(output: str) -> ClusterRole:
    words = (output.strip().splitlines() or [""])[-1].split(" ", 1)
    return ClusterRole(words[0], words[1] if len(words) > 1 else "")


def slot_name(host_name: str) -> str:
    """The standby's replication slot and application_name, from its inventory name."""
    return replication.check_slot(("standby_" + re.sub(r"[^a-z0-9_]", "_", host_name.lower()))[:63])


def hba_address(address: str) -> str:
    """One address in pg_hba form: a /32 or /128 network, or a host name as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return f"{ip}/{ip.max_prefixlen}"


def psql_client(db: DatabaseSettings) -> str:
    """psql as the cluster's account over its socket: one value per row, errors stop it."""
    return f"{db.run_as} {db.bindir}/psql -h {q(db.socket_dir)} -p {db.port} -U {db.superuser} -d postgres -qAtX -v ON_ERROR_STOP=1".strip()


def psql(db: DatabaseSettings, sql: str) -> str:
    return f"{psql_client(db)} -c {q(sql)}"


def as_owner(db: DatabaseSettings, script: str, *args: str) -> str:
    """`script` in a shell of the cluster's account, `args` as its $1, $2, ..."""
    return " ".join([db.run_as, "sh -c", q(script), "sh", *args]).strip()


ROLE_SQL = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby ' || coalesce((SELECT status || ' ' || sender_host "
    "FROM pg_stat_wal_receiver), 'none') ELSE 'primary ' || (SELECT count(*) FROM pg_database "
    "WHERE datname NOT IN ('postgres', 'template0', 'template1')) END"
)


def role_command(db: DatabaseSettings) -> str:
    """Read-only: absent, down, fenced (stopped with standby.signal), building (a standby build was
    interrupted), primary N or standby STATUS SENDER."""
    data = q(db.data_dir)
    return (
        f"if ! {as_owner(db, f'test -f {data}/PG_VERSION')}; then echo absent; "
        f'elif out=$({psql(db, ROLE_SQL)} 2>/dev/null); then echo "$out"; '
        f"elif {as_owner(db, f'test -f {q(db.build_marker)}')}; then echo building; "
        f"elif {as_owner(db, f'test -f {data}/standby.signal')}; then echo fenced; else echo down; fi"
    )


# -- on the primary ------------------------------------------------------------------------------


def replication_lag_command(db: DatabaseSettings) -> str:
    """Each standby's lag as one JSON array, read as the cluster's account: the app's role sees
    NULL LSN columns in pg_stat_replication without pg_monitor."""
    rows = " ".join(replication.REPLICATION_LAG_SQL.split())
    return psql(db, f"SELECT coalesce(json_agg(r), '[]') FROM ({rows}) r")


def replication_role_command(db: DatabaseSettings, password_file: str) -> str:
    """Create or update the replication role with the uploaded password; the file is removed either way.

    printf is the shell's own: the password never shows in a process list or a command line.
    """
    user = db.replication_user
    create = (
        f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {sql_literal(user)}) "
        f'THEN CREATE ROLE "{user}"; END IF; END$$;'
    )
    sql = f"{create}\\nALTER ROLE \"{user}\" WITH REPLICATION LOGIN PASSWORD '%s';\\n"
    return (
        f'printf {q(sql)} "$(cat {q(password_file)})" | {psql_client(db)} -f -; status=$?; '
        f"rm -f {q(password_file)}; exit $status"
    )


def hba_line(db: DatabaseSettings, standby_address: str) -> str:
    return f"host replication {db.replication_user} {hba_address(standby_address)} scram-sha-256"


MONITOR_GRANT_SQL = (
    "DO $$DECLARE owner text; BEGIN FOR owner IN SELECT DISTINCT r.rolname FROM pg_database d "
    "JOIN pg_roles r ON r.oid = d.datdba WHERE NOT r.rolsuper "
    "AND d.datname NOT IN ('postgres', 'template0', 'template1') LOOP "
    "EXECUTE format('GRANT pg_monitor TO %I', owner); END LOOP; END$$"
)


def monitor_grant_command(db: DatabaseSettings) -> str:
    """pg_monitor for the app's role (the owner of the app's database): without it the LSN columns
    of pg_stat_replication read NULL, and `health` and `handoff` could not show the lag in bytes."""
    return f"{psql(db, MONITOR_GRANT_SQL)} >/dev/null"


def app_hba_line(address: str) -> str:
    """An app host reaching this cluster over TCP, with its role's password."""
    return f"host all all {hba_address(address)} scram-sha-256"


def hba_command(db: DatabaseSettings, line: str) -> str:
    """Append `line` to pg_hba.conf (once, however often it runs), then reload."""
    append = f'grep -qxF {q(line)} "$1" || printf \'%s\\n\' {q(line)} >> "$1"'
    owner_append = as_owner(db, append, '"$hba"')
    return f"hba=$({psql(db, 'SHOW hba_file')}) && {owner_append} && {psql(db, 'SELECT pg_reload_conf()')} >/dev/null"


def listen_command(db: DatabaseSettings) -> str:
    """Debian's cluster listens on localhost only: open it to the network, with its one restart."""
    show, alter = psql(db, "SHOW listen_addresses"), psql(db, "ALTER SYSTEM SET listen_addresses = '*'")
    return f'[ "$({show})" != localhost ] || {{ {alter} && {db.stop} && {db.start}; }}'


def firewall_command(db: DatabaseSettings, address: str) -> str | None:
    """Let `address` reach the cluster's port through the firewall provision enables."""
    if db.firewall == "none":
        return None
    return f"sudo -n ufw allow from {q(address)} to any port {db.port} proto tcp"


def drop_idle_slot_command(db: DatabaseSettings, slot: str) -> str:
    """A rebuild creates the slot again; an active one (the standby still streams) is left, and
    pg_basebackup then says so."""
    sql = (
        "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots "
        f"WHERE slot_name = {sql_literal(replication.check_slot(slot))} AND NOT active"
    )
    return f"{psql(db, sql)} >/dev/null"


def synchronous_command(db: DatabaseSettings, slot: str | None) -> str:
    return " && ".join(f"{psql(db, sql)} >/dev/null" for sql in replication.synchronous_sql(slot))


def wait_streaming_command(db: DatabaseSettings, slot: str, timeout: int = STREAMING_TIMEOUT_SECONDS) -> str:
    """Poll pg_stat_replication until the standby streams, bounded by `timeout` seconds."""
    sql = f"SELECT state FROM pg_stat_replication WHERE application_name = {sql_literal(slot)}"
    return (
        f"end=$(($(date +%s) + {int(timeout)})); "
        f'until [ "$({psql(db, sql)})" = streaming ]; do '
        f'[ "$(date +%s)" -lt "$end" ] || {{ echo "{slot} was not streaming after {int(timeout)}s" >&2; exit 1; }}; '
        "sleep 0.5; done"
    )


# -- on the standby ------------------------------------------------------------------------------


def passfile_command(db: DatabaseSettings, password_file: str) -> str:
    """The replication password in a pgpass file only the cluster's account reads; upload removed."""
    write = f"umask 077 && cat > {q(db.passfile)}"
    return (
        f"printf '*:*:*:%s:%s\\n' {q(db.replication_user)} \"$(cat {q(password_file)})\" | {as_owner(db, write)}; "
        f"status=$?; rm -f {q(password_file)}; exit $status"
    )


def wipe_command(db: DatabaseSettings) -> str:
    """An empty data folder (a packaged one is kept: its owner is the packaging's), marked as a build
    in progress first, so an interrupted build reads as one and a rerun may empty it again."""
    data = q(db.data_dir)
    return as_owner(
        db, f"touch {q(db.build_marker)} && mkdir -p {data} && chmod 700 {data} && find {data} -mindepth 1 -delete"
    )


def start_built_command(db: DatabaseSettings) -> str:
    return f"{db.start} && {as_owner(db, f'rm -f {q(db.build_marker)}')}"


def base_backup_command(db: DatabaseSettings, primary_address: str, slot: str) -> str:
    argv = replication.base_backup_argv(db.bindir, primary_address, db.port, db.replication_user, db.data_dir, slot)
    return as_owner(db, f"PGPASSFILE={q(db.passfile)} " + " ".join(q(a) for a in argv))


def standby_conf(db: DatabaseSettings, primary_address: str, slot: str, restore_command: str | None) -> str:
    """Appended after pg_basebackup's settings, so these win: the standby names itself, streams
    with the passfile, and never inherits the primary's wait for a synchronous standby (once
    promoted it would wait for itself) nor a fence's read-only default."""
    conninfo = (
        f"host={primary_address} port={db.port} user={db.replication_user} passfile={db.passfile} "
        f"application_name={slot}"
    )
    settings = {
        **replication.standby_settings(slot, restore_command),
        "primary_conninfo": conninfo,
        "primary_slot_name": slot,
        "synchronous_standby_names": "",
        "default_transaction_read_only": "off",
    }
    return config_lines(settings)


def append_conf_command(db: DatabaseSettings, lines: str) -> str:
    return f"printf '%s' {q(lines)} | {as_owner(db, f'cat >> {q(db.data_dir)}/postgresql.auto.conf')}"


# -- failover ------------------------------------------------------------------------------------


def fence_command(db: DatabaseSettings, new_primary_address: str) -> str:
    """Stop the old primary and make every later start a read-only follower of the new one."""
    conninfo = f"host={new_primary_address} port={db.port} user={db.replication_user} passfile={db.passfile}"
    lines = config_lines(replication.fence_settings(conninfo))
    signal = as_owner(db, f"touch {q(db.data_dir)}/standby.signal")
    return f"{{ {db.stop} || true; }} && {append_conf_command(db, lines)} && {signal}"


def kill_postmaster_command(db: DatabaseSettings) -> str:
    """The drill's crash: SIGKILL the postmaster, as a power cut or the OOM killer would."""
    return as_owner(db, f"kill -KILL $(head -n 1 {q(db.data_dir)}/postmaster.pid)")


def promote_command(db: DatabaseSettings) -> str:
    """Promote, then stop waiting for a synchronous standby: the new primary has none yet."""
    promoted = psql(db, replication.promote_sql(PROMOTE_TIMEOUT_SECONDS))
    return (
        f'[ "$({promoted})" = t ] || {{ echo "pg_promote did not finish within {PROMOTE_TIMEOUT_SECONDS}s" >&2; '
        f"exit 1; }}; {synchronous_command(db, None)}"
    )


REPOINT_SCRIPT = r"""
import os, sys, urllib.parse
path, host, port, socket_dir = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
lines = open(path).read().splitlines(keepends=True)
for i, line in enumerate(lines):
    name, sep, value = line.partition("=")
    if name.strip().removeprefix("export ").strip() != "DATABASE_URL" or not sep:
        continue
    url = urllib.parse.urlsplit(value.strip().strip("'\""))
    auth = url.netloc.rpartition("@")[0]
    query = [(k, v) for k, v in urllib.parse.parse_qsl(url.query) if k != "host"]
    if socket_dir:
        netloc, query, shown = f":{port}", query + [("host", socket_dir)], f"{socket_dir} (port {port})"
    else:
        netloc, shown = ((f"[{host}]" if ":" in host else host) + ":" + port), f"{host}:{port}"
    new = url._replace(netloc=(auth + "@" if auth else "") + netloc, query=urllib.parse.urlencode(query, safe="/"))
    lines[i] = name + "=" + urllib.parse.urlunsplit(new) + "\n"
    was = dict(urllib.parse.parse_qsl(url.query)).get("host") or url.hostname
    print(f"DATABASE_URL: {was} (port {url.port or 5432}) -> {shown}")
    break
else:
    sys.exit(f"{path} has no DATABASE_URL line")
tmp = path + ".failover"
with open(tmp, "w") as out:
    out.writelines(lines)
os.chmod(tmp, os.stat(path).st_mode & 0o777)
os.replace(tmp, path)
"""


def repoint_command(python: str, env_file: str, address: str, port: int, socket_dir: str = "") -> str:
    """Point the env file's DATABASE_URL at the new primary, keeping role, password and database:
    through its Unix socket on the primary's own host (`socket_dir`, as provision sets it up), else
    over TCP at address:port. Only where it points is printed: the URL carries the password."""
    script = f"{q(python)} -c {q(REPOINT_SCRIPT)} {q(env_file)} {q(address)} {int(port)} {q(socket_dir)}"
    return f"if [ -f {q(env_file)} ]; then {script}; else echo 'no env file (not provisioned): nothing to repoint'; fi"

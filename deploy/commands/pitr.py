"""Shell commands for WAL archiving and point-in-time restore on the database host (pure, unit-tested).

The database host is the environment's first host (all hosts share its database). Setup runs as
root (`provision --pitr`, as --admin-user); the restores run as the deploy user, who may run the
PITR CLI as PostgreSQL's account through one sudoers rule and nothing else. The PITR code is copied
out of the current release into PITR_CODE_DIR, so archive_command keeps working across deploys and
rollbacks, and PostgreSQL's account never needs to read the deploy root.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from deploy.commands.layout import Layout
from deploy.database import DatabaseSettings
from deploy.ops.pitr.barman import alter_system_sql, archive_settings, wal_command

q = shlex.quote

PITR_CODE_DIR = "/usr/local/lib/clicknback-pitr"
PITR_ENV_FILE = "/etc/clicknback/pitr.env"
PITR_LOG = "/var/log/postgresql/clicknback-pitr.log"
SYSTEM_PYTHON = "/usr/bin/python3"
SUDOERS_FILE = "/etc/sudoers.d/clicknback-pitr"
CRON_FILE = "/etc/cron.d/clicknback-pitr"
SCRATCH_ROOT = "/var/lib/postgresql/clicknback-pitr"
# Only what archive_command and the PITR CLI import: the standard library, `cryptography` and boto3. The
# backup package's own __init__ is left behind (an empty one stands in): it names the app's modules.
PITR_FILES = (
    "deploy/__init__.py",
    "deploy/ops/__init__.py",
    "deploy/ops/backup/crypto.py",
    "deploy/ops/backup/model.py",
    "deploy/ops/backup/store.py",
    "deploy/ops/pitr/__init__.py",
    "deploy/ops/pitr/barman.py",
    "deploy/ops/pitr/wal.py",
    "deploy/ops/pitr/runner.py",
    "deploy/ops/pitr/sealed.py",
    "deploy/ops/pitr/basebackup.py",
    "deploy/ops/pitr/cli.py",
)
# The variables the archive needs, copied out of the secrets file (which only the deploy user reads).
PITR_VARIABLES = r"^(export )?(S3_[A-Z_]+|PITR_[A-Z_]+|BACKUP_ENCRYPTION_KEY)="
# Daily base backup at 01:30 UTC (provision --system sets the host's zone to UTC), after the dump.
BASE_BACKUP_CRON = "30 1 * * *"
# apt waits for a lock held by unattended-upgrades (a fresh VPS runs it) instead of failing at once.
APT_LOCK_WAIT_SECONDS = 300


@dataclass(frozen=True)
class PitrHost:
    """Where PITR lives on the database host: the Debian layout by default, or one folder (`dir`).

    Read off the inventory's `[environments.X.database]` table (from_database), the one description
    of the cluster (ADR 0046): another account, socket or port for a cluster that is not Debian's,
    and `pitr_name` to keep several environments' cron and sudoers files apart on one machine.
    """

    os_user: str = "postgres"
    pg_host: str = "/var/run/postgresql"
    pg_port: int = 5432
    name: str = "clicknback-pitr"
    dir: str | None = None
    # The live cluster, for `restore --to-time --confirm-live`: its folder, and how the deploy user
    # stops and starts it (provision --pitr allows these two systemctl commands through sudo).
    data_dir: str = "/var/lib/postgresql/15/main"
    pg_stop: str = "sudo -n systemctl stop postgresql@15-main"
    pg_start: str = "sudo -n systemctl start postgresql@15-main"

    @classmethod
    def from_database(cls, db: DatabaseSettings) -> PitrHost:
        """The database table already checked every key (deploy/database.py's parse_database)."""
        return cls(
            os_user=db.account,
            pg_host=db.socket_dir,
            pg_port=db.port,
            name=db.pitr_name,
            dir=db.pitr_dir or None,
            data_dir=db.data_dir,
            pg_stop=db.stop,
            pg_start=db.start,
        )

    def _path(self, default: str, inside: str) -> str:
        return default if self.dir is None else f"{self.dir.rstrip('/')}/{inside}"

    @property
    def code_dir(self) -> str:
        return self._path(PITR_CODE_DIR, "code")

    @property
    def env_file(self) -> str:
        return self._path(PITR_ENV_FILE, "etc/pitr.env")

    @property
    def log(self) -> str:
        return self._path(PITR_LOG, "pitr.log")

    @property
    def scratch_root(self) -> str:
        return self._path(SCRATCH_ROOT, "scratch")

    @property
    def cron_file(self) -> str:
        return f"/etc/cron.d/{self.name}"

    @property
    def sudoers_file(self) -> str:
        return f"/etc/sudoers.d/{self.name}"


DEBIAN = PitrHost()


def pitr_cli(*args: str, host: PitrHost = DEBIAN) -> str:
    """The PITR CLI as PostgreSQL's account runs it (cron, and the deploy user through sudo)."""
    return (
        f"/usr/bin/env PYTHONPATH={host.code_dir} {SYSTEM_PYTHON} -m deploy.ops.pitr.cli --env-file {host.env_file} "
        + " ".join(q(a) for a in args)
    )


def pitr_cli_as_postgres(*args: str, host: PitrHost = DEBIAN) -> str:
    return f"sudo -n -u {q(host.os_user)} {pitr_cli(*args, host=host)}"


def as_cluster_user(command: str, host: PitrHost = DEBIAN) -> str:
    """`command` run by root as the cluster's account (which may have no login shell)."""
    return f"su {q(host.os_user)} -s /bin/sh -c {q('cd / && ' + command)}"


def psql_as_postgres(sql: str, host: PitrHost = DEBIAN) -> str:
    psql = f"psql -qX -v ON_ERROR_STOP=1 -h {q(host.pg_host)} -p {host.pg_port} -U postgres -d postgres"
    return f"printf '%s\\n' {q(sql)} | {as_cluster_user(psql, host)}"


def setup_commands(layout: Layout, deploy_user: str, host: PitrHost = DEBIAN) -> list[str]:
    """Idempotent root commands: packages, code, settings, archive_command, cron, sudo, a first base backup."""
    code = host.code_dir
    copy = " && ".join(
        f"install -m 644 {q(layout.current + '/' + path)} {q(code + '.new/' + path)}" for path in PITR_FILES
    )
    archive_command = wal_command(SYSTEM_PYTHON, code, host.env_file, "push")
    # A reload applies archive_command where archive_mode is on already (no restart comes then).
    settings_sql = ";\n".join([*alter_system_sql(archive_settings(archive_command)), "SELECT pg_reload_conf()"]) + ";"
    base_backup = pitr_cli("base-backup", "--host", host.pg_host, "--port", str(host.pg_port), host=host)
    cron_line = f"{BASE_BACKUP_CRON} {host.os_user} cd / && {base_backup} >> {host.log} 2>&1\n"
    sudo_line = (
        f"{deploy_user} ALL=({host.os_user}) NOPASSWD: /usr/bin/env PYTHONPATH={code} {SYSTEM_PYTHON} "
        "-m deploy.ops.pitr.cli *\n"
        f"{deploy_user} ALL=(root) NOPASSWD: /usr/bin/systemctl stop postgresql@15-main, "
        "/usr/bin/systemctl start postgresql@15-main\n"
    )
    group = f"$(id -gn {q(host.os_user)})"
    env_dir = host.env_file.rsplit("/", 1)[0]
    show_archive_mode = as_cluster_user(
        f"psql -tAX -h {q(host.pg_host)} -p {host.pg_port} -U postgres -d postgres -c 'SHOW archive_mode'", host
    )
    return [
        f"apt-get install -y -o DPkg::Lock::Timeout={APT_LOCK_WAIT_SECONDS} --no-install-recommends "
        "barman-cli-cloud python3-boto3 python3-cryptography",
        f"rm -rf {code}.new && install -d -m 755 {code}.new/deploy/ops/pitr {code}.new/deploy/ops/backup"
        f" && touch {code}.new/deploy/ops/backup/__init__.py && {copy}"
        f" && rm -rf {code} && mv {code}.new {code}",
        f"install -d -m 750 -o root -g {group} {q(env_dir)} && umask 027"
        f" && grep -E {q(PITR_VARIABLES)} {q(layout.env_file)} > {host.env_file}.new"
        f" && chgrp {group} {host.env_file}.new && mv {host.env_file}.new {host.env_file}",
        f"install -d -m 700 -o {q(host.os_user)} -g {group} {q(host.scratch_root)}"
        f" && touch {q(host.log)} && chown {q(host.os_user)}:{group} {q(host.log)}",
        psql_as_postgres(settings_sql, host),
        # archive_mode takes effect on a restart only: one restart, the first time.
        f'[ "$({show_archive_mode})" = on ] || systemctl restart postgresql'
        " || { echo 'PostgreSQL did not restart with archive_mode=on' >&2; exit 1; }",
        f"printf '%s' {q(cron_line)} > {host.cron_file}.new && chmod 644 {host.cron_file}.new"
        f" && mv {host.cron_file}.new {host.cron_file}",
        f"printf '%s' {q(sudo_line)} > {host.sudoers_file}.new && chmod 440 {host.sudoers_file}.new"
        f" && visudo -cqf {host.sudoers_file}.new && mv {host.sudoers_file}.new {host.sudoers_file}",
        # barman's backup waits, unbounded, for its last segment to be archived: prove archiving
        # works first, with a bounded wait that names archive_command's failure.
        as_cluster_user(
            pitr_cli("close-segment", "--host", host.pg_host, "--port", str(host.pg_port), host=host), host
        ),
        as_cluster_user(base_backup, host),
    ]


def scratch_dir(stamp: str, host: PitrHost = DEBIAN) -> str:
    return f"{host.scratch_root}/restore-{stamp}/data"


def restore_command(to_time: str | None, data_dir: str, port: int, host: PitrHost = DEBIAN) -> str:
    target = ["--to-time", to_time] if to_time else ["--to-latest"]
    return pitr_cli_as_postgres("restore", *target, "--data-dir", data_dir, "--port", str(port), host=host)


def discard_command(data_dir: str, host: PitrHost = DEBIAN) -> str:
    return pitr_cli_as_postgres("discard", "--data-dir", data_dir, host=host)


def base_backup_command(host: PitrHost = DEBIAN) -> str:
    return pitr_cli_as_postgres("base-backup", "--host", host.pg_host, "--port", str(host.pg_port), host=host)


def close_segment_command(host: PitrHost = DEBIAN) -> str:
    return pitr_cli_as_postgres("close-segment", "--host", host.pg_host, "--port", str(host.pg_port), host=host)


def restore_live_command(to_time: str | None, stamp: str, host: PitrHost = DEBIAN) -> str:
    target = ["--to-time", to_time] if to_time else ["--to-latest"]
    return pitr_cli_as_postgres("restore-live", *target, "--data-dir", host.data_dir, "--stamp", stamp, host=host)


def wait_primary_command(host: PitrHost = DEBIAN) -> str:
    return pitr_cli_as_postgres("wait-primary", "--host", host.pg_host, "--port", str(host.pg_port), host=host)


def backups_command(host: PitrHost = DEBIAN) -> str:
    return pitr_cli_as_postgres("backups", host=host)


def restored_checks_command(layout: Layout, port: int) -> str:
    """Wallet invariants and row counts on the scratch copy, with the app's role and password."""
    return (
        f"cd {q(layout.current)} && ENV_FILE={q(layout.env_file)} ./.venv/bin/python -m deploy.ops.cli "
        f"check-restored --port {int(port)}"
    )

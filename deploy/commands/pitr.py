"""Shell commands for WAL archiving and point-in-time restore on the database host (pure, unit-tested).

The database host is the environment's first host (all hosts share its database). Setup runs as
root (`provision --pitr`, as --admin-user); the restores run as the deploy user, who may run the
PITR CLI as PostgreSQL's account through one sudoers rule and nothing else. The PITR code is copied
out of the current release into PITR_CODE_DIR, so archive_command keeps working across deploys and
rollbacks, and PostgreSQL's account never needs to read the deploy root.
"""

from __future__ import annotations

import shlex

from deploy.commands.layout import Layout
from deploy.ops.pitr.barman import alter_system_sql, archive_settings, wal_command

q = shlex.quote

PITR_CODE_DIR = "/usr/local/lib/clicknback-pitr"
PITR_ENV_FILE = "/etc/clicknback/pitr.env"
PITR_LOG = "/var/log/postgresql/clicknback-pitr.log"
SYSTEM_PYTHON = "/usr/bin/python3"
SUDOERS_FILE = "/etc/sudoers.d/clicknback-pitr"
CRON_FILE = "/etc/cron.d/clicknback-pitr"
SCRATCH_ROOT = "/var/lib/postgresql/clicknback-pitr"
# Only what archive_command and the PITR CLI import: the standard library and `cryptography`. The
# backup package's own __init__ is left behind (an empty one stands in): it names the app's modules.
PITR_FILES = (
    "deploy/__init__.py",
    "deploy/ops/__init__.py",
    "deploy/ops/backup/crypto.py",
    "deploy/ops/pitr/__init__.py",
    "deploy/ops/pitr/barman.py",
    "deploy/ops/pitr/wal.py",
    "deploy/ops/pitr/runner.py",
    "deploy/ops/pitr/cli.py",
)
# The variables the archive needs, copied out of the secrets file (which only the deploy user reads).
PITR_VARIABLES = r"^(export )?(S3_[A-Z_]+|PITR_[A-Z_]+|BACKUP_ENCRYPTION_KEY)="
# Daily base backup at 01:30 UTC (provision --system sets the host's zone to UTC), after the dump.
BASE_BACKUP_CRON = "30 1 * * *"


def pitr_cli(*args: str) -> str:
    """The PITR CLI as PostgreSQL's account runs it (cron, and the deploy user through sudo)."""
    return (
        f"/usr/bin/env PYTHONPATH={PITR_CODE_DIR} {SYSTEM_PYTHON} -m deploy.ops.pitr.cli --env-file {PITR_ENV_FILE} "
        + " ".join(q(a) for a in args)
    )


def pitr_cli_as_postgres(*args: str) -> str:
    return f"sudo -n -u postgres {pitr_cli(*args)}"


def psql_as_postgres(sql: str) -> str:
    return f"printf '%s\\n' {q(sql)} | su postgres -c 'psql -qX -v ON_ERROR_STOP=1'"


def setup_commands(layout: Layout, deploy_user: str) -> list[str]:
    """Idempotent root commands: packages, code, settings, archive_command, cron, sudo, a first base backup."""
    copy = " && ".join(
        f"install -m 644 {q(layout.current + '/' + path)} {q(PITR_CODE_DIR + '.new/' + path)}" for path in PITR_FILES
    )
    archive_command = wal_command(SYSTEM_PYTHON, PITR_CODE_DIR, PITR_ENV_FILE, "push")
    settings_sql = ";\n".join(alter_system_sql(archive_settings(archive_command))) + ";"
    cron_line = f"{BASE_BACKUP_CRON} postgres cd / && {pitr_cli('base-backup')} >> {PITR_LOG} 2>&1\n"
    sudo_line = f"{deploy_user} ALL=(postgres) NOPASSWD: /usr/bin/env PYTHONPATH={PITR_CODE_DIR} {SYSTEM_PYTHON} -m deploy.ops.pitr.cli *\n"
    return [
        "apt-get install -y --no-install-recommends barman-cli-cloud python3-boto3 python3-cryptography",
        f"rm -rf {PITR_CODE_DIR}.new && install -d -m 755 {PITR_CODE_DIR}.new/deploy/ops/pitr {PITR_CODE_DIR}.new/deploy/ops/backup"
        f" && touch {PITR_CODE_DIR}.new/deploy/ops/backup/__init__.py && {copy}"
        f" && rm -rf {PITR_CODE_DIR} && mv {PITR_CODE_DIR}.new {PITR_CODE_DIR}",
        f"install -d -m 750 -o root -g postgres /etc/clicknback && umask 027"
        f" && grep -E {q(PITR_VARIABLES)} {q(layout.env_file)} > {PITR_ENV_FILE}.new"
        f" && chgrp postgres {PITR_ENV_FILE}.new && mv {PITR_ENV_FILE}.new {PITR_ENV_FILE}",
        f"install -d -m 700 -o postgres -g postgres {SCRATCH_ROOT}",
        psql_as_postgres(settings_sql),
        # archive_mode takes effect on a restart only: one restart, the first time.
        '[ "$(su postgres -c \'psql -tAXc "SHOW archive_mode"\')" = on ] || systemctl restart postgresql'
        " || { echo 'PostgreSQL did not restart with archive_mode=on' >&2; exit 1; }",
        f"printf '%s' {q(cron_line)} > {CRON_FILE}.new && chmod 644 {CRON_FILE}.new && mv {CRON_FILE}.new {CRON_FILE}",
        f"printf '%s' {q(sudo_line)} > {SUDOERS_FILE}.new && chmod 440 {SUDOERS_FILE}.new"
        f" && visudo -cqf {SUDOERS_FILE}.new && mv {SUDOERS_FILE}.new {SUDOERS_FILE}",
        f"su postgres -s /bin/sh -c {q('cd / && ' + pitr_cli('base-backup'))}",
    ]


def scratch_dir(stamp: str) -> str:
    return f"{SCRATCH_ROOT}/restore-{stamp}/data"


def restore_command(to_time: str | None, data_dir: str, port: int) -> str:
    target = ["--to-time", to_time] if to_time else ["--to-latest"]
    return pitr_cli_as_postgres("restore", *target, "--data-dir", data_dir, "--port", str(port))


def discard_command(data_dir: str) -> str:
    return pitr_cli_as_postgres("discard", "--data-dir", data_dir)


def backups_command() -> str:
    return pitr_cli_as_postgres("backups")


def restored_checks_command(layout: Layout, port: int) -> str:
    """Wallet invariants and row counts on the scratch copy, with the app's role and password."""
    return (
        f"cd {q(layout.current)} && ENV_FILE={q(layout.env_file)} ./.venv/bin/python -m deploy.ops.cli "
        f"check-restored --port {int(port)}"
    )

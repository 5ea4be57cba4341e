"""The shell the toolkit sends to the database host for WAL archiving and point-in-time restores."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from deploy.commands import Layout
from deploy.commands import pitr as pc
from deploy.database import DatabaseSettings
from deploy.inventory import InventoryError, parse_inventory
from deploy.ops.pitr.ops_commands import scratch_database_url

ROOT = Path(__file__).resolve().parents[3]
LAYOUT = Layout("/srv/clicknback")


def test_every_file_the_host_copies_exists_and_needs_no_app_dependency() -> None:
    for path in pc.PITR_FILES:
        text = (ROOT / path).read_text()
        assert "import asyncpg" not in text and "from server" not in text, path


def test_the_copied_files_alone_run_the_pitr_cli_under_the_system_python(tmp_path: Path) -> None:
    """The host's copy holds PITR_FILES and an empty deploy/ops/backup/__init__.py, nothing else: every
    module the CLI and archive_command import (the dumps' sealer and uploader included) must be in it."""
    import subprocess

    for path in pc.PITR_FILES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((ROOT / path).read_text())
    (tmp_path / "deploy/ops/backup/__init__.py").touch()
    modules = "deploy.ops.pitr.cli, deploy.ops.pitr.wal, deploy.ops.pitr.basebackup"
    result = subprocess.run(
        ["/usr/bin/python3", "-c", f"import {modules}"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_setup_archives_with_the_copied_code_restarts_once_and_takes_a_first_base_backup() -> None:
    commands = pc.setup_commands(LAYOUT, "deploy")
    joined = "\n".join(commands)
    assert commands[0].startswith("apt-get install -y -o DPkg::Lock::Timeout=")
    assert "--no-install-recommends barman-cli-cloud" in commands[0]
    assert f"PYTHONPATH={pc.PITR_CODE_DIR}" in joined and "push %p" in joined
    sql = shlex.split(next(c for c in commands if "ALTER SYSTEM" in c))[2]  # printf '%s\n' SQL | ...
    assert "ALTER SYSTEM SET archive_mode = 'on';" in sql and "ALTER SYSTEM SET archive_timeout = '60s';" in sql
    assert sql.endswith("SELECT pg_reload_conf();")  # archive_command applies without the restart
    assert "|| systemctl restart postgresql" in joined
    assert "visudo -cqf" in joined  # a broken sudoers file is never installed
    assert commands[-1].startswith("su postgres") and "base-backup" in commands[-1]
    for command in commands:
        shlex.split(command)  # each one is well-formed shell


def test_the_secrets_file_lends_only_the_archives_variables() -> None:
    copy = next(c for c in pc.setup_commands(LAYOUT, "deploy") if "pitr.env.new" in c)
    assert "S3_" in copy and "PITR_" in copy and "BACKUP_ENCRYPTION_KEY" in copy
    assert "DATABASE_URL" not in copy and "umask 027" in copy


def test_the_sudo_rule_and_the_tasks_name_the_same_command() -> None:
    sudo = next(c for c in pc.setup_commands(LAYOUT, "deploy") if pc.SUDOERS_FILE in c)
    restore = pc.restore_command("2026-12-06T10:15:00Z", pc.scratch_dir("20261206T101500"), 55432)
    prefix = f"/usr/bin/env PYTHONPATH={pc.PITR_CODE_DIR} {pc.SYSTEM_PYTHON} -m deploy.ops.pitr.cli"
    assert prefix in sudo and restore.startswith(f"sudo -n -u postgres {prefix}")
    assert "--to-time 2026-12-06T10:15:00Z" in restore and "--port 55432" in restore
    assert "--to-latest" in pc.restore_command(None, "/x", 1)


def test_a_hostile_time_stays_one_argument() -> None:
    restore = pc.restore_command("2026-12-06T10:15:00Z; rm -rf /", "/x", 1)
    assert "'2026-12-06T10:15:00Z; rm -rf /'" in restore


def test_a_host_profile_moves_every_file_and_names_its_account_and_cluster() -> None:
    host = pc.PitrHost.from_database(
        DatabaseSettings(
            account="nobody", socket_dir="127.0.0.1", port=6543, pitr_name="clicknback-pitr-e2e", pitr_dir="/x/p"
        )
    )
    joined = "\n".join(pc.setup_commands(LAYOUT, "deploy", host))
    for default in (
        pc.PITR_CODE_DIR,
        pc.PITR_ENV_FILE,
        pc.SCRATCH_ROOT,
        pc.PITR_LOG,
        pc.CRON_FILE + " ",
        pc.SUDOERS_FILE + " ",
    ):
        assert default not in joined
    assert "/x/p/code" in joined and "/x/p/etc/pitr.env" in joined and "/etc/cron.d/clicknback-pitr-e2e" in joined
    assert "su nobody -s /bin/sh" in joined and "-h 127.0.0.1 -p 6543" in joined
    assert "--host 127.0.0.1 --port 6543" in joined  # the cron line and the first base backup
    assert "deploy ALL=(nobody) NOPASSWD" in joined
    restore = pc.restore_command(None, pc.scratch_dir("s", host), 1, host)
    assert restore.startswith("sudo -n -u nobody /usr/bin/env PYTHONPATH=/x/p/code ") and "/x/p/scratch/" in restore


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://app:pw@db.internal:5432/clicknback", "postgres://app:pw@127.0.0.1:6543/clicknback"),
        ("postgres://app:pw@:5432/clicknback?host=/var/run/postgresql", "postgres://app:pw@127.0.0.1:6543/clicknback"),
        (
            "postgres://app@localhost/clicknback?sslmode=disable",
            "postgres://app@127.0.0.1:6543/clicknback?sslmode=disable",
        ),
    ],
)
def test_the_scratch_copy_is_reached_with_the_live_role_on_its_own_port(url: str, expected: str) -> None:
    assert scratch_database_url(url, 6543) == expected


def test_the_database_table_gives_pitr_its_host_profile_and_checks_its_keys() -> None:
    hosts = '[[environments.prod.hosts]]\naddress = "10.0.0.5"\n'
    table = '[environments.prod.database]\naccount = "pg"\nport = 6432\npitr_dir = "/srv/pitr/"\nstop = "halt"\n'
    host = pc.PitrHost.from_database(
        parse_inventory("[environments.prod]\n" + hosts + table).environment("prod").database
    )
    assert (host.os_user, host.pg_port, host.env_file, host.pg_stop) == ("pg", 6432, "/srv/pitr/etc/pitr.env", "halt")
    assert pc.PitrHost.from_database(parse_inventory("[environments.prod]\n" + hosts).environment("prod").database) == (
        pc.DEBIAN
    )
    for line, message in (
        ('pitr_name = "Bad Name"', "database.pitr_name: lowercase letters, digits and -"),
        ('pitr_dir = "srv"', "database.pitr_dir: expected an absolute path"),
        ('account = ""', "database.account: expected the cluster's OS account"),
    ):
        with pytest.raises(InventoryError, match=r"inv\.toml: environments\.prod\." + message):
            parse_inventory(f"[environments.prod]\n{hosts}[environments.prod.database]\n{line}\n", "inv.toml")

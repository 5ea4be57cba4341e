"""Runs barman-cloud: base backups, retention, and a restore to a point in time into a data folder.

Thin on purpose: every command and setting comes from barman.py. The tools run as PostgreSQL's own
account (`os_user`), so restored files belong to it and the tools read the data folder as it does.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from deploy.ops.pitr.barman import (
    PitrSettings,
    backup_list_argv,
    base_backup_argv,
    choose_backup,
    config_lines,
    recovery_settings,
    restore_argv,
    retention_argv,
)

TOOL_TIMEOUT_SECONDS = 3600


class PitrRunError(RuntimeError):
    """A barman-cloud tool failed; the message carries its last lines (never the credentials)."""


@dataclass(frozen=True)
class PreparedRestore:
    backup_id: str
    data_dir: Path
    target_time: datetime | None


def _as_user(os_user: str | None) -> dict:
    if os_user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(os_user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run_tool(
    settings: PitrSettings, argv: list[str], os_user: str | None, timeout: float = TOOL_TIMEOUT_SECONDS
) -> str:
    result = subprocess.run(
        argv,
        env={**os.environ, **settings.cloud_env()},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
        stdin=subprocess.DEVNULL,
        **_as_user(os_user),
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise PitrRunError(f"{Path(argv[0]).name} failed with status {result.returncode}: {tail}")
    return result.stdout


def take_base_backup(settings: PitrSettings, host: str, port: int, user: str, os_user: str | None) -> None:
    run_tool(settings, base_backup_argv(settings, host, port, user), os_user)


def list_backups(settings: PitrSettings, os_user: str | None) -> list[dict]:
    return json.loads(run_tool(settings, backup_list_argv(settings), os_user, timeout=300)).get("backups_list", [])


def apply_retention(settings: PitrSettings, os_user: str | None) -> None:
    run_tool(settings, retention_argv(settings), os_user)


def prepare_restore(
    settings: PitrSettings,
    data_dir: Path,
    target_time: datetime | None,
    restore_command: str,
    os_user: str | None,
    live: bool = False,
) -> PreparedRestore:
    """Lay down the base backup in `data_dir` (new or empty) and tell PostgreSQL where to stop.

    Starting PostgreSQL on the folder replays the archive; it promotes itself at the target.
    """
    if data_dir.exists() and any(data_dir.iterdir()):
        raise PitrRunError(f"{data_dir} is not empty: a restore goes into a new folder")
    backup_id = choose_backup(list_backups(settings, os_user), target_time)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os_user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(os_user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    run_tool(settings, restore_argv(settings, backup_id, str(data_dir)), os_user)
    # Later lines of postgresql.auto.conf win over the primary's settings copied with the backup.
    with open(data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write(config_lines(recovery_settings(restore_command, target_time, live)))
    (data_dir / "recovery.signal").touch()
    if os_user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(os_user)
        for path in (data_dir / "recovery.signal", data_dir / "postgresql.auto.conf"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return PreparedRestore(backup_id, data_dir, target_time)

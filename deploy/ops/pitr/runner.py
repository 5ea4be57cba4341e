"""Base backups, retention, and a restore to a point in time into a data folder.

Base backups are ours, sealed (basebackup.py, ADR 0045); barman's older ones in the bucket are still
listed and restored through barman-cloud-restore until retention removes them. Every command and
setting comes from barman.py and sealed.py. The tools run as PostgreSQL's own account (`os_user`),
so restored files belong to it and the tools read the data folder as it does.
"""

from __future__ import annotations

import gzip
import json
import os
import pwd
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from deploy.ops.backup.store import StoreError
from deploy.ops.pitr import basebackup
from deploy.ops.pitr.barman import (
    PitrSettings,
    backup_list_argv,
    choose_backup,
    config_lines,
    recovery_settings,
    restore_argv,
)
from deploy.ops.pitr.sealed import BaseManifest

DEFAULT_BINDIR = "/usr/lib/postgresql/15/bin"

TOOL_TIMEOUT_SECONDS = 3600
VERIFY_CHUNK_BYTES = 1024 * 1024


class PitrRunError(RuntimeError):
    """A barman-cloud tool failed; the message carries its last lines (never the credentials)."""


@dataclass(frozen=True)
class PreparedRestore:
    backup_id: str
    data_dir: Path
    target_time: datetime | None


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
        **basebackup.as_user(os_user),
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise PitrRunError(f"{Path(argv[0]).name} failed with status {result.returncode}: {tail}")
    return result.stdout


@contextmanager
def _sealed_errors() -> Iterator[None]:
    """The sealed path's failures (the bucket's included) read as the barman path's do."""
    try:
        yield
    except (basebackup.BaseBackupError, StoreError) as error:
        raise PitrRunError(str(error)) from None


def take_base_backup(
    settings: PitrSettings, host: str, port: int, user: str, os_user: str | None, bindir: str = DEFAULT_BINDIR
) -> BaseManifest:
    with _sealed_errors():
        return basebackup.take(settings, bindir, host, port, user, os_user)


def list_backups(settings: PitrSettings, os_user: str | None) -> list[dict]:
    """Ours and, while the bucket still holds any, barman's (its list tool runs only then)."""
    with _sealed_errors():
        store = basebackup.make_store(settings)
        entries = [manifest.entry() for manifest in basebackup.manifests(settings, store)]
        has_barman = basebackup.has_barman_backups(settings, store)
    if has_barman:
        listed = json.loads(run_tool(settings, backup_list_argv(settings), os_user, timeout=300))
        entries += [{**entry, "kind": "barman"} for entry in listed.get("backups_list", [])]
    return entries


def apply_retention(settings: PitrSettings, os_user: str | None) -> dict:
    entries = list_backups(settings, os_user)
    with _sealed_errors():
        return basebackup.retention(settings, entries)


def verify_base_backup(settings: PitrSettings, backup_id: str) -> int:
    """Read every tarball of the backup to its end, so gzip checks its CRC-32 and length.

    barman-cloud-restore stops reading a tarball at tar's end marker, before gzip's trailer: a
    damaged base backup would be laid down and started without a word. Returns the bytes read.
    """
    import boto3  # the host's python3-boto3, which barman-cloud uses too

    client = boto3.client("s3", endpoint_url=settings.endpoint_url, **_boto_credentials(settings))
    prefix = f"{settings.prefix}/{settings.server_name}/base/{backup_id}/"
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if item["Key"].endswith(".tar.gz")
    ]
    if not keys:
        raise PitrRunError(f"base backup {backup_id} has no tarball under {prefix}")
    total = 0
    for key in keys:
        body = client.get_object(Bucket=settings.bucket, Key=key)["Body"]
        try:
            with gzip.GzipFile(fileobj=body) as unpacked:
                while chunk := unpacked.read(VERIFY_CHUNK_BYTES):
                    total += len(chunk)
        except (OSError, EOFError, zlib.error) as error:
            raise PitrRunError(f"base backup {backup_id} is damaged: {key.rsplit('/', 1)[-1]}: {error}") from None
        finally:
            body.close()
    return total


def _boto_credentials(settings: PitrSettings) -> dict[str, str]:
    env = settings.cloud_env()
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


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
    chosen = choose_backup(list_backups(settings, os_user), target_time)
    backup_id = chosen["backup_id"]
    if chosen.get("kind") == "sealed":
        with _sealed_errors():
            manifest = next(m for m in basebackup.manifests(settings) if m.backup_id == backup_id)
            try:
                basebackup.restore(settings, manifest, data_dir, os_user)
            except BaseException:
                shutil.rmtree(data_dir, ignore_errors=True)  # a half-laid folder must never be started
                raise
    else:
        verify_base_backup(settings, backup_id)
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

"""Restore a backup into a new database, or over the live one behind a safety backup."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TextIO

from deploy.ops.backup import db as backup_db
from deploy.ops.backup.commands import (
    database_name,
    database_name_problem,
    find_pg_client,
    libpq_environment,
    restore_commands,
    with_database,
)
from deploy.ops.backup.crypto import DecryptionError, Decryptor, check_key
from deploy.ops.backup.model import (
    Manifest,
)
from deploy.ops.backup.operations import READ_CHUNK, BackupError, BusyError, UsageError, find_backup, run_backup
from deploy.ops.backup.process import ProcessChain, Progress, StageFailed
from deploy.ops.backup.settings import BackupSettings
from deploy.ops.backup.store import S3Store


def check_database_name(name: str) -> None:
    problem = database_name_problem(name)
    if problem:
        raise UsageError(problem)


def fetch_verified(settings: BackupSettings, store: S3Store, manifest: Manifest, spool_dir: Path) -> Path:
    """Download the data and prove it is the object the manifest describes, before any use."""
    if manifest.encrypted:
        if not settings.encryption_key:
            raise BackupError(f"backup {manifest.backup_id} is encrypted: BACKUP_ENCRYPTION_KEY is not set")
        try:
            check_key(settings.encryption_key, manifest.encryption or {})
        except DecryptionError as error:
            raise BackupError(f"backup {manifest.backup_id}: {error}") from None
    path = spool_dir / "data"
    progress = Progress("downloading")
    with path.open("wb") as handle:
        size, sha256 = store.download(manifest.data_key, handle, progress.update)
    progress.done()
    if size != manifest.size_bytes or sha256 != manifest.sha256:
        raise BackupError(
            f"checksum mismatch for backup {manifest.backup_id}: stored object has {size} bytes sha256 {sha256}, "
            f"the manifest says {manifest.size_bytes} bytes sha256 {manifest.sha256}; refusing to use it"
        )
    return path


def load_into(settings: BackupSettings, manifest: Manifest, data_path: Path, target: str, replace: bool) -> None:
    """Feed verified data through decryption and pg_restore into `target` (one transaction)."""
    pg_restore = find_pg_client("pg_restore")
    decryptor = None
    if manifest.encrypted:
        decryptor = Decryptor(settings.encryption_key or "", bytes.fromhex((manifest.encryption or {})["salt"]))
    commands = restore_commands(pg_restore, manifest.compression, target, replace)
    with ProcessChain(
        commands, libpq_environment(settings.database_url, target), feed_stdin=True, read_stdout=False
    ) as chain:
        try:
            with data_path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(READ_CHUNK), b""):
                    chain.stdin.write(decryptor.update(chunk) if decryptor else chunk)
            if decryptor:
                decryptor.finish()
        except BrokenPipeError:
            pass  # a stage died early: check() below reports which and why
        except DecryptionError as error:
            chain.kill()  # before pg_restore reaches its COMMIT
            raise BackupError(f"backup {manifest.backup_id}: {error}; nothing was restored") from None
        try:
            chain.check()
        except StageFailed as error:
            raise BackupError(f"restore into {target} failed and was rolled back: {error}") from None


def create_database(settings: BackupSettings, name: str) -> None:
    try:
        backup_db.create_database(settings.database_url, name)
    except backup_db.CreateDatabaseRefused as error:
        raise BackupError(str(error)) from None


def check_restore_request(target: str, live_name: str, confirm_live: bool, safety_backup: bool) -> bool:
    """Refuse contradictory restore requests before anything is read or written; True = live restore."""
    check_database_name(target)
    live = target == live_name
    if live and not confirm_live:
        raise UsageError(f"{target} is the live database (DATABASE_URL): restoring over it needs --confirm-live")
    if confirm_live and not live:
        raise UsageError(
            f"--confirm-live replaces the live database {live_name}, but --target names {target}: "
            "give --target alone for a new database, or --confirm-live alone for the live one"
        )
    if not safety_backup and not live:
        raise UsageError("--no-safety-backup only applies to replacing the live database (--confirm-live)")
    return live


def restore(
    settings: BackupSettings,
    store: S3Store,
    backup_id: str,
    target: str,
    confirm_live: bool,
    out: TextIO,
    safety_backup: bool = True,
) -> None:
    live_name = database_name(settings.database_url)
    live = check_restore_request(target, live_name, confirm_live, safety_backup)
    if live and not safety_backup:
        print(
            f"restore: WARNING: --no-safety-backup: the live database {live_name} will be replaced WITHOUT a "
            "safety backup; whatever it holds now is lost",
            file=out,
            flush=True,
        )
    manifest = find_backup(settings, store, backup_id)
    exists = backup_db.database_exists(settings.database_url, target)
    if live and not exists and safety_backup:
        raise UsageError(
            f"the live database {target} does not exist on the server, so no safety backup can be "
            "taken; if it is really lost, run the restore again with --no-safety-backup "
            "(docs/disaster-recovery.md)"
        )
    if exists and not live and backup_db.database_has_tables(settings.database_url, target):
        raise UsageError(f"database {target} already has tables: restore into a new database name or drop it first")
    clock = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clicknback-restore-", dir=settings.work_dir) as spool:
        data_path = fetch_verified(settings, store, manifest, Path(spool))
        print(
            f"restore: backup {manifest.backup_id} downloaded, sha256 verified ({manifest.size_bytes} bytes)",
            file=out,
            flush=True,
        )
        if live and safety_backup:
            safety = take_safety_backup(settings, store, live_name, out)
            print(f"restore: safety backup {safety.backup_id} stored", file=out, flush=True)
        elif live and exists:
            print(f"restore: NO safety backup of {live_name} (--no-safety-backup)", file=out, flush=True)
        if not exists:
            if live:
                print(f"restore: the live database {target} does not exist: creating it", file=out, flush=True)
            create_database(settings, target)
        try:
            load_into(settings, manifest, data_path, target, replace=live and exists)
        except BaseException:
            if not exists:
                backup_db.drop_database(settings.database_url, target)
            raise
    extra = []
    with backup_db.Database(with_database(settings.database_url, target)) as db:
        extra = sorted(set(db.row_counts()) - set(manifest.row_counts))
    print(
        f"restore: backup {manifest.backup_id} (migration {manifest.migration_head or '-'}) restored into "
        f"{target} in {time.monotonic() - clock:.1f}s",
        file=out,
        flush=True,
    )
    if extra:
        print(
            f"restore: warning: {target} also has tables the backup does not contain: {', '.join(extra)}",
            file=out,
            flush=True,
        )


def take_safety_backup(settings: BackupSettings, store: S3Store, live_name: str, out: TextIO) -> Manifest:
    """A backup of the live database before it is replaced; failing, it stops the restore."""
    print(f"restore: taking a safety backup of the live database {live_name} first", file=out, flush=True)
    try:
        return run_backup(settings, store, reason="safety", out=out)
    except (UsageError, BusyError):
        raise
    except Exception as error:  # noqa: BLE001 - pg_dump, asyncpg, S3: all mean "no safety backup"
        detail = str(error) if isinstance(error, BackupError) else f"{type(error).__name__}: {error}"
        raise BackupError(
            f"the safety backup failed, so nothing was restored ({detail}); if the live database "
            "is lost or too damaged to dump, run the restore again with --no-safety-backup "
            "(docs/disaster-recovery.md)"
        ) from None

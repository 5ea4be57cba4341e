"""The backup operations themselves: backup, list and prune (restore.py and verify.py hold the rest).

Each takes settings and a store and writes its human output to `out`; the CLI module only
parses arguments and maps errors to exit statuses.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from deploy.ops.backup import db as backup_db
from deploy.ops.backup.commands import (
    database_name,
    dump_commands,
    find_pg_client,
    libpq_environment,
)
from deploy.ops.backup.crypto import Encryptor, encryption_metadata, new_salt
from deploy.ops.backup.model import (
    INCOMPLETE_GRACE,
    BackupFolder,
    Manifest,
    ManifestError,
    data_key,
    format_backup_table,
    group_by_backup,
    listing_row,
    manifest_key,
    new_backup_id,
    plan_retention,
    unusable_reason,
    utc_iso,
    verification_key,
)
from deploy.ops.backup.process import ProcessChain, Progress, StageFailed
from deploy.ops.backup.settings import BackupSettings
from deploy.ops.backup.store import S3Store, StoreError

READ_CHUNK = 1024 * 1024


class BackupError(RuntimeError):
    """The operation failed; the message says why and what state things are in."""

    exit_status = 1


class UsageError(BackupError):
    """The request itself is refused (bad name, missing confirmation)."""

    exit_status = 2


class BusyError(BackupError):
    """Another backup of the same database is running (e.g. the cron of a second host)."""

    exit_status = 3


def make_store(settings: BackupSettings) -> S3Store:
    return S3Store(
        settings.s3_endpoint_url,
        settings.s3_bucket,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
        settings.s3_addressing_style,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def read_release(directory: Path) -> dict[str, Any] | None:
    """RELEASE.json of the release we run from (None in development)."""
    path = directory / "RELEASE.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tool_version(binary: str) -> str:
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return result.stdout.strip()


def run_backup(settings: BackupSettings, store: S3Store, reason: str, out: TextIO) -> Manifest:
    """Dump, compress, (encrypt,) upload in parts, then write the manifest. Raises BackupError."""
    started = now_utc()
    clock = time.monotonic()
    backup_id = new_backup_id(started)
    store.check_bucket()  # fail before any work when the bucket is unreachable
    pg_dump = find_pg_client("pg_dump")
    database = database_name(settings.database_url)
    key = data_key(settings.prefix, backup_id, settings.compression, settings.encryption_key is not None)
    print(f"backup {backup_id}: dumping database {database} to s3://{settings.s3_bucket}/{key}", file=out, flush=True)

    db = backup_db.Database(settings.database_url)
    try:
        if not db.try_backup_lock():
            raise BusyError(
                f"another backup of database {database} is running (its advisory lock is held); "
                "not starting a second one"
            )
        snapshot = db.begin_snapshot()
        server_version = db.server_version()
        migration_head = db.migration_head()
        row_counts = db.row_counts()
        encryption = None
        encryptor = None
        if settings.encryption_key:
            salt = new_salt()
            encryption = encryption_metadata(settings.encryption_key, salt)
            encryptor = Encryptor(settings.encryption_key, salt)
        size, sha256 = _dump_and_upload(settings, store, pg_dump, snapshot, key, encryptor)
        db.end_snapshot()
    finally:
        db.close()

    finished = now_utc()
    manifest = Manifest(
        backup_id=backup_id,
        database=database,
        data_key=key,
        size_bytes=size,
        sha256=sha256,
        compression=settings.compression,
        encryption=encryption,
        server_version=server_version,
        pg_dump_version=tool_version(pg_dump),
        release=read_release(Path.cwd()),
        migration_head=migration_head,
        row_counts=row_counts,
        started_at=utc_iso(started),
        finished_at=utc_iso(finished),
        duration_seconds=round(time.monotonic() - clock, 3),
        reason=reason,
        host=socket.gethostname(),
    )
    # Written last: only now does the backup exist for `backups`, restore and retention.
    try:
        store.put_bytes(manifest_key(settings.prefix, backup_id), manifest.to_json())
    except StoreError as error:
        raise BackupError(
            f"the data was uploaded but the manifest could not be written ({error}): backup "
            f"{backup_id} is incomplete and unusable; prune-backups removes it after a day"
        ) from None
    rows = sum(row_counts.values())
    print(
        f"backup {backup_id}: complete, {size} bytes, sha256 {sha256}, {rows} rows in {len(row_counts)} tables, "
        f"{manifest.duration_seconds:.1f}s",
        file=out,
        flush=True,
    )
    return manifest


def _dump_and_upload(
    settings: BackupSettings, store: S3Store, pg_dump: str, snapshot: str, key: str, encryptor: Encryptor | None
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    progress = Progress("uploading")
    upload = store.open_multipart(key, settings.part_size)
    try:
        with ProcessChain(
            dump_commands(pg_dump, settings.compression, snapshot),
            libpq_environment(settings.database_url),
            feed_stdin=False,
            read_stdout=True,
        ) as chain:

            def store_bytes(data: bytes) -> None:
                nonlocal size
                if data:
                    digest.update(data)
                    size += len(data)
                    upload.write(data)
                    progress.update(size)

            for chunk in iter(lambda: chain.stdout.read(READ_CHUNK), b""):
                store_bytes(encryptor.update(chunk) if encryptor else chunk)
            chain.check()  # BEFORE completing: a failed dump must never become an object
            if encryptor:
                store_bytes(encryptor.finish())
        upload.complete()
        progress.done()
    except BaseException as error:
        progress.done()
        cleaned = upload.abort()
        state = (
            "the partial upload was discarded"
            if cleaned
            else "the partial upload could not be discarded now; prune-backups removes it after a day"
        )
        if isinstance(error, StageFailed):
            raise BackupError(f"dump failed: {error}; no backup was stored ({state})") from None
        if isinstance(error, StoreError):
            raise BackupError(f"upload failed: {error}; no backup was stored ({state})") from None
        raise
    return size, digest.hexdigest()


@dataclass
class Inventory:
    folders: dict[str, BackupFolder]
    manifests: dict[str, Manifest] = field(default_factory=dict)  # complete backups only
    verifications: dict[str, dict] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # incomplete backup id -> why it is not usable
    unreadable_verifications: list[str] = field(default_factory=list)

    def verified_ok(self) -> set[str]:
        """Complete backups whose latest restore drill passed."""
        return {
            backup_id
            for backup_id, result in self.verifications.items()
            if backup_id in self.manifests and result.get("ok") is True
        }

    def newest_first(self) -> list[Manifest]:
        return sorted(self.manifests.values(), key=lambda m: (m.finished, m.backup_id), reverse=True)


def take_inventory(settings: BackupSettings, store: S3Store, with_verifications: bool = True) -> Inventory:
    folders = group_by_backup(settings.prefix, store.list_objects(settings.prefix))
    inventory = Inventory(folders)
    for backup_id, folder in sorted(folders.items()):
        manifest = None
        if folder.has_manifest:
            try:
                manifest = Manifest.from_json(store.get_bytes(manifest_key(settings.prefix, backup_id)))
            except ManifestError:
                manifest = None
        problem = unusable_reason(folder, manifest)
        if problem is None and manifest is not None:
            inventory.manifests[backup_id] = manifest
            if with_verifications and folder.has_verification:
                try:
                    inventory.verifications[backup_id] = json.loads(
                        store.get_bytes(verification_key(settings.prefix, backup_id))
                    )
                except (ValueError, StoreError):
                    inventory.unreadable_verifications.append(backup_id)
        else:
            inventory.incomplete.append(backup_id)
            inventory.problems[backup_id] = problem or "no usable manifest"
    return inventory


def list_backups(settings: BackupSettings, store: S3Store, out: TextIO, as_json: bool) -> None:
    inventory = take_inventory(settings, store)
    complete = inventory.newest_first()
    if as_json:
        print(
            json.dumps(
                {
                    "complete": [
                        {**json.loads(m.to_json()), "verification": inventory.verifications.get(m.backup_id)}
                        for m in complete
                    ],
                    "incomplete": sorted(inventory.incomplete),
                    "incomplete_reasons": dict(sorted(inventory.problems.items())),
                },
                sort_keys=True,
            ),
            file=out,
        )
        return
    if complete:
        print(
            format_backup_table([listing_row(m, inventory.verifications.get(m.backup_id)) for m in complete]), file=out
        )
    else:
        print(f"no complete backups under s3://{settings.s3_bucket}/{settings.prefix}", file=out)
    if inventory.incomplete:
        print(
            f"{len(inventory.incomplete)} backup(s) not restorable (prune-backups deletes them a day after "
            f"their last write):",
            file=out,
        )
        for backup_id in sorted(inventory.incomplete):
            print(f"  {backup_id}: {inventory.problems[backup_id]}", file=out)


def find_backup(settings: BackupSettings, store: S3Store, backup_id: str | None) -> Manifest:
    """The named complete backup, or the newest complete one when no id is given."""
    inventory = take_inventory(settings, store, with_verifications=False)
    if backup_id is None:
        newest = inventory.newest_first()
        if not newest:
            raise BackupError(f"no complete backup under s3://{settings.s3_bucket}/{settings.prefix}")
        return newest[0]
    if backup_id in inventory.manifests:
        return inventory.manifests[backup_id]
    if backup_id in inventory.incomplete:
        raise BackupError(f"backup {backup_id} is incomplete ({inventory.problems[backup_id]}): not usable")
    raise BackupError(f"no backup {backup_id} under s3://{settings.s3_bucket}/{settings.prefix}")


def prune_backups(settings: BackupSettings, store: S3Store, out: TextIO, dry_run: bool) -> None:
    inventory = take_inventory(settings, store, with_verifications=True)
    if inventory.unreadable_verifications:
        # Retention keeps the newest verified backup: without knowing which that is, delete nothing.
        raise BackupError(
            f"cannot read the verification result of {', '.join(inventory.unreadable_verifications)}; "
            "nothing was deleted (run prune-backups again; check the bucket)"
        )
    now = now_utc()
    plan = plan_retention(
        complete={backup_id: m.finished for backup_id, m in inventory.manifests.items()},
        incomplete={backup_id: inventory.folders[backup_id].newest_modification for backup_id in inventory.incomplete},
        now=now,
        retention_days=settings.retention_days,
        min_keep=settings.min_keep,
        verified=inventory.verified_ok(),
    )
    stale_uploads = store.stale_multipart_uploads(settings.prefix, now - INCOMPLETE_GRACE)
    verb = "would delete" if dry_run else "deleting"
    print(
        f"retention: keep {settings.retention_days} days, at least {settings.min_keep} backups; "
        f"{len(plan.keep)} kept, {len(plan.delete_complete)} expired, {len(plan.delete_incomplete)} incomplete, "
        f"{len(stale_uploads)} unfinished upload(s)",
        file=out,
    )
    for backup_id in plan.keep:
        print(f"  keep     {backup_id} ({plan.reasons[backup_id]})", file=out)
    for backup_id in plan.delete_complete:
        print(f"  {verb} {backup_id} (expired)", file=out)
    for backup_id in plan.delete_incomplete:
        when = inventory.folders[backup_id].newest_modification.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
        print(f"  {verb} {backup_id} (incomplete: {inventory.problems[backup_id]}; last written {when})", file=out)
    for key, _ in stale_uploads:
        print(f"  {'would abort' if dry_run else 'aborting'} unfinished upload {key}", file=out)
    if dry_run:
        return
    for backup_id in plan.delete:
        # Manifest first: a half-deleted backup must read as incomplete, never as complete.
        folder = inventory.folders[backup_id]
        manifest_first = sorted(folder.keys, key=lambda key: not key.endswith("/manifest.json"))
        store.delete_keys(manifest_first[:1])
        store.delete_keys(manifest_first[1:])
    for key, upload_id in stale_uploads:
        store.abort_upload(key, upload_id)
    print(f"retention: done, {len(plan.delete)} backup(s) removed", file=out)

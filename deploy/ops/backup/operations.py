"""The backup operations themselves: backup, list, prune, restore, verify.

Each takes settings and a store and writes its human output to `out`; the CLI module only
parses arguments and maps errors to exit statuses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from deploy.ops.backup import db as backup_db
from deploy.ops.backup.commands import (
    database_name,
    database_name_problem,
    dump_commands,
    find_pg_client,
    libpq_environment,
    restore_commands,
    with_database,
)
from deploy.ops.backup.crypto import DecryptionError, Decryptor, Encryptor, check_key, encryption_metadata, new_salt
from deploy.ops.backup.model import (
    INCOMPLETE_GRACE,
    BackupFolder,
    Manifest,
    ManifestError,
    data_key,
    format_backup_table,
    group_by_backup,
    is_complete,
    listing_row,
    manifest_key,
    new_backup_id,
    plan_retention,
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


# -- backup ----------------------------------------------------------------------------------


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


# -- inventory -------------------------------------------------------------------------------


@dataclass
class Inventory:
    folders: dict[str, BackupFolder]
    manifests: dict[str, Manifest] = field(default_factory=dict)  # complete backups only
    verifications: dict[str, dict] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
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
        if manifest is not None and manifest.backup_id == backup_id and is_complete(folder, manifest):
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
            f"{len(inventory.incomplete)} incomplete backup(s) without a usable manifest (not restorable; "
            f"prune-backups removes them after a day): {', '.join(sorted(inventory.incomplete))}",
            file=out,
        )


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
        raise BackupError(f"backup {backup_id} is incomplete (no valid manifest or its data is missing): not usable")
    raise BackupError(f"no backup {backup_id} under s3://{settings.s3_bucket}/{settings.prefix}")


# -- retention -------------------------------------------------------------------------------


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
        print(f"  {verb} {backup_id} (incomplete)", file=out)
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


# -- restore ---------------------------------------------------------------------------------


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


# -- verification ----------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def available_ops_commands() -> set[str]:
    from deploy.ops import cli

    parser = cli.build_parser()
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return set(action.choices)
    return set()


def run_check_wallets(database_url: str) -> Check:
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", "check-wallets"], capture_output=True, text=True, env=env, timeout=600
    )
    output = (result.stdout + result.stderr).strip().splitlines()
    detail = " | ".join(output[-5:]) if output else f"exit status {result.returncode}"
    return Check("wallets", result.returncode == 0, detail)


def scratch_database_name(live_name: str) -> str:
    suffix = f"_verify_{secrets.token_hex(4)}"
    return live_name[: 63 - len(suffix)] + suffix


def verify_backup(settings: BackupSettings, store: S3Store, backup_id: str | None, out: TextIO) -> bool:
    manifest = find_backup(settings, store, backup_id)
    scratch = scratch_database_name(database_name(settings.database_url))
    scratch_url = with_database(settings.database_url, scratch)
    checks: list[Check] = []
    clock = time.monotonic()
    print(
        f"verify: backup {manifest.backup_id} ({manifest.finished_at}) into scratch database {scratch}",
        file=out,
        flush=True,
    )

    def record(check: Check) -> None:
        checks.append(check)
        print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}", file=out, flush=True)

    created = False
    try:
        with tempfile.TemporaryDirectory(prefix="clicknback-verify-", dir=settings.work_dir) as spool:
            try:
                data_path = fetch_verified(settings, store, manifest, Path(spool))
                record(Check("checksum", True, f"sha256 {manifest.sha256} ({manifest.size_bytes} bytes)"))
            except BackupError as error:
                record(Check("checksum", False, str(error)))
                data_path = None
            if data_path is not None:
                create_database(settings, scratch)
                created = True
                restore_clock = time.monotonic()
                try:
                    load_into(settings, manifest, data_path, scratch, replace=False)
                    record(Check("restore", True, f"pg_restore finished in {time.monotonic() - restore_clock:.1f}s"))
                except BackupError as error:
                    record(Check("restore", False, str(error)))
        if created and all(check.ok for check in checks):
            for check in _database_checks(manifest, scratch_url):
                record(check)
            if "check-wallets" in available_ops_commands():
                record(run_check_wallets(scratch_url))
            else:
                record(Check("wallets", True, "skipped: this release has no check-wallets command"))
    finally:
        if created:
            backup_db.drop_database(settings.database_url, scratch)
    ok = bool(checks) and all(check.ok for check in checks)
    result = {
        "backup_id": manifest.backup_id,
        "ok": ok,
        "verified_at": utc_iso(now_utc()),
        "duration_seconds": round(time.monotonic() - clock, 3),
        "host": socket.gethostname(),
        "release": read_release(Path.cwd()),
        "checks": [check.__dict__ for check in checks],
    }
    store.put_bytes(
        verification_key(settings.prefix, manifest.backup_id),
        (json.dumps(result, indent=2, sort_keys=True) + "\n").encode(),
    )
    print(
        f"verify: backup {manifest.backup_id} {'PASSED' if ok else 'FAILED'} in {result['duration_seconds']:.1f}s "
        f"(scratch database dropped)",
        file=out,
        flush=True,
    )
    return ok


def _database_checks(manifest: Manifest, scratch_url: str) -> list[Check]:
    checks: list[Check] = []
    with backup_db.Database(scratch_url) as db:
        counts = db.row_counts()
        differences = [
            f"{table}: manifest {manifest.row_counts.get(table)} restored {counts.get(table)}"
            for table in sorted(set(counts) | set(manifest.row_counts))
            if counts.get(table) != manifest.row_counts.get(table)
        ]
        total = sum(counts.values())
        checks.append(
            Check(
                "row counts",
                not differences,
                "; ".join(differences) if differences else f"{len(counts)} tables, {total} rows match",
            )
        )
        head = db.migration_head()
        checks.append(
            Check(
                "migration head",
                head == manifest.migration_head,
                f"restored {head or '-'}, manifest {manifest.migration_head or '-'}",
            )
        )
        problems = db.foreign_key_problems()
        checks.append(
            Check(
                "foreign keys",
                not problems,
                "; ".join(problems) if problems else f"{db.foreign_key_count()} foreign keys, no orphans",
            )
        )
    return checks

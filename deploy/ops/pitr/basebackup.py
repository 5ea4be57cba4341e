"""Sealed base backups (ADR 0045): take one, list them with barman's, restore one, apply retention.

pg_basebackup's tar goes through gzip and the dumps' AES-256-GCM stream (deploy/ops/backup/crypto.py)
into the dumps' multipart upload (store.py), chunk by chunk: memory stays at a few upload parts
whatever the database's size. A restore downloads the object, checks its sha256 against the
manifest and then every GCM tag and gzip's CRC, and only then lays a file down.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import socket
import subprocess
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from deploy.ops.backup.crypto import DecryptionError, Decryptor, Encryptor, check_key, encryption_metadata, new_salt
from deploy.ops.backup.model import new_backup_id
from deploy.ops.backup.store import S3Store, StoreError
from deploy.ops.pitr import sealed
from deploy.ops.pitr.barman import PitrSettings, PitrSettingsError

READ_CHUNK = 1024 * 1024
# 10,000 parts of 32 MiB: base backups up to about 300 GiB; three parts in memory at most.
PART_SIZE = 32 * 1024 * 1024
# Level 1: pages compress about as well as at 6 for a fraction of the CPU the host shares with the app.
GZIP_LEVEL = 1
# Inflate in bounded steps: a megabyte of zero pages would otherwise grow into a gigabyte at once.
INFLATE_STEP = 8 * 1024 * 1024
BACKUP_TIMEOUT_SECONDS = 3600


class BaseBackupError(RuntimeError):
    """A sealed base backup could not be taken or restored; the message says why."""


def make_store(settings: PitrSettings) -> S3Store:
    env = settings.cloud_env()
    return S3Store(
        settings.endpoint_url,
        settings.bucket,
        settings.region,
        env["AWS_ACCESS_KEY_ID"],
        env["AWS_SECRET_ACCESS_KEY"],
        settings.addressing_style,
    )


def as_user(os_user: str | None) -> dict:
    if os_user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(os_user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def take(
    settings: PitrSettings, bindir: str, host: str, port: int, user: str, os_user: str | None = None
) -> sealed.BaseManifest:
    store = make_store(settings)
    store.check_bucket()  # fail before the checkpoint when the bucket is unreachable
    started = datetime.now(UTC)
    backup_id = new_backup_id(started)
    key = settings.encryption_key
    salt = new_salt()
    encryptor = Encryptor(key, salt) if key else None
    data_key = sealed.data_key(settings, backup_id, encrypted=encryptor is not None)
    digest, size = hashlib.sha256(), 0

    def send(data: bytes) -> None:
        nonlocal size
        if data:
            digest.update(data)
            size += len(data)
            upload.write(data)

    # A Ctrl-C while the upload opens aborts it there (S3Store.open_multipart); from here on, the
    # except below discards the parts.
    upload = store.open_multipart(data_key, PART_SIZE)
    try:
        start, stop_lsn = _stream(sealed.basebackup_argv(bindir, host, port, user), os_user, encryptor, send)
        upload.complete()  # only a backup pg_basebackup finished becomes an object
    except BaseException as error:
        upload.abort()
        if isinstance(error, (StoreError, PitrSettingsError)):
            raise BaseBackupError(f"base backup {backup_id} not stored: {error}") from None
        raise
    manifest = sealed.BaseManifest(
        backup_id=backup_id,
        server_name=settings.server_name,
        begin_time=started.isoformat(),
        end_time=datetime.now(UTC).isoformat(),
        begin_lsn=start.start_lsn,
        end_lsn=stop_lsn,
        timeline=start.timeline,
        begin_wal=start.start_wal,
        data_key=data_key,
        size_bytes=size,
        sha256=digest.hexdigest(),
        encryption=encryption_metadata(key, salt) if key else None,
        host=socket.gethostname(),
    )
    store.put_bytes(sealed.manifest_key(settings, backup_id), manifest.to_json())
    return manifest


def _stream(
    argv: list[str], os_user: str | None, encryptor: Encryptor | None, send: Callable[[bytes], None]
) -> tuple[sealed.Label, str]:
    """pg_basebackup's tar through gzip (and the sealing) into `send`; its label and stop LSN."""
    with tempfile.TemporaryFile(prefix="pitr-basebackup-") as errors:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, cwd="/", **as_user(os_user)
        )
        # The server waits, unbounded, for the last segment to be archived: a stuck archive_command
        # must end the backup, not hang the cron job.
        watchdog = threading.Timer(BACKUP_TIMEOUT_SECONDS, process.kill)
        watchdog.daemon = True  # never keeps the process alive after it stopped: a Ctrl-C exits now
        try:
            watchdog.start()  # inside the try: a Ctrl-C while it starts still kills pg_basebackup
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
            label, tail = sealed.LabelReader(), sealed.TailReader()
            stdout = process.stdout
            assert stdout is not None
            for chunk in iter(lambda: stdout.read(READ_CHUNK), b""):
                label.feed(chunk)
                tail.feed(chunk)
                packed = compressor.compress(chunk)
                send(encryptor.update(packed) if encryptor else packed)
            rest = compressor.flush()
            send(encryptor.update(rest) + encryptor.finish() if encryptor else rest)
            status = process.wait(timeout=60)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        errors.seek(0)
        verbose = errors.read().decode(errors="replace")
    if status != 0:
        lines = " | ".join(verbose.strip().splitlines()[-4:])
        raise BaseBackupError(f"pg_basebackup failed with status {status}: {lines}")
    return label.label(), tail.stop_lsn()


def _stamped(store: S3Store, prefix: str) -> list[tuple[str, datetime]]:
    return [(item.key, item.last_modified) for item in store.list_objects(prefix)]


def manifests(settings: PitrSettings, store: S3Store | None = None) -> list[sealed.BaseManifest]:
    """The complete sealed backups: each folder with a readable manifest."""
    store = store or make_store(settings)
    prefix = sealed.sealed_prefix(settings)
    found = []
    for backup_id, objects in sorted(sealed.folders(prefix, _stamped(store, prefix)).items()):
        if any(key.endswith("/" + sealed.MANIFEST_NAME) for key, _ in objects):
            try:
                found.append(sealed.BaseManifest.from_json(store.get_bytes(sealed.manifest_key(settings, backup_id))))
            except sealed.ManifestError:
                continue
    return found


def has_barman_backups(settings: PitrSettings, store: S3Store) -> bool:
    return bool(store.list_objects(sealed.barman_base_prefix(settings)))


def _plain_chunks(path: Path, manifest: sealed.BaseManifest, secret: str | None) -> Iterator[bytes]:
    """The tar, from the downloaded object: GCM tags and gzip's CRC checked as it goes."""
    decryptor = Decryptor(secret or "", bytes.fromhex(manifest.encryption["salt"])) if manifest.encryption else None
    inflater = zlib.decompressobj(31)
    with path.open("rb") as handle:
        for sealed_chunk in iter(lambda: handle.read(READ_CHUNK), b""):
            pending = decryptor.update(sealed_chunk) if decryptor else sealed_chunk
            while pending:
                yield inflater.decompress(pending, INFLATE_STEP)
                pending = inflater.unconsumed_tail
    if decryptor:
        decryptor.finish()
    if not inflater.eof or inflater.unused_data:
        raise BaseBackupError("the gzip stream is truncated or has data after its end")


class _ChunkReader:
    """A read()-able view of a chunk iterator, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        size = len(self._buffer) if size < 0 else size
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def _safe(member: tarfile.TarInfo) -> bool:
    parts = Path(member.name).parts
    return (member.isfile() or member.isdir()) and not member.name.startswith("/") and ".." not in parts


def restore(settings: PitrSettings, manifest: sealed.BaseManifest, data_dir: Path, os_user: str | None = None) -> int:
    """Download, verify everything, then untar into `data_dir` (new or empty). Returns the object's size."""
    if manifest.encryption is not None:
        if not settings.encryption_key:
            raise BaseBackupError(f"base backup {manifest.backup_id} is encrypted: BACKUP_ENCRYPTION_KEY is not set")
        try:
            check_key(settings.encryption_key, manifest.encryption)
        except DecryptionError as error:
            raise BaseBackupError(f"base backup {manifest.backup_id}: {error}") from None
    store = make_store(settings)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # The spool sits beside the data folder: same disk, and gone with its TemporaryDirectory.
    with tempfile.TemporaryDirectory(prefix=".pitr-spool-", dir=data_dir.parent) as spool:
        path = Path(spool) / "base"
        with path.open("wb") as handle:
            size, sha256 = store.download(manifest.data_key, handle)
        if (size, sha256) != (manifest.size_bytes, manifest.sha256):
            raise BaseBackupError(
                f"base backup {manifest.backup_id} is damaged: {size} bytes sha256 {sha256}, the manifest "
                f"says {manifest.size_bytes} bytes sha256 {manifest.sha256}; nothing was restored"
            )
        try:
            for _ in _plain_chunks(path, manifest, settings.encryption_key):
                pass  # every tag and the CRC, before anything is laid down
        except (DecryptionError, zlib.error, BaseBackupError) as error:
            raise BaseBackupError(
                f"base backup {manifest.backup_id} is damaged: {error}; nothing was restored"
            ) from None
        _untar(_ChunkReader(_plain_chunks(path, manifest, settings.encryption_key)), data_dir, manifest.backup_id)
    (data_dir / "pg_wal" / "archive_status").mkdir(parents=True, exist_ok=True)
    if os_user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(os_user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        for root, dirs, files in os.walk(data_dir):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    return size


def _untar(stream: IO[bytes] | _ChunkReader, data_dir: Path, backup_id: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            if not _safe(member):
                raise BaseBackupError(f"base backup {backup_id} holds {member.name!r}, which a restore refuses")
            tar.extract(member, data_dir, set_attrs=member.isfile())


def retention(settings: PitrSettings, entries: list[dict], now: datetime | None = None) -> dict:
    """Keep the `redundancy` newest backups (either kind), then the WAL from the oldest kept one on."""
    store = make_store(settings)
    kept, dropped = sealed.plan_retention(entries, settings.redundancy)
    for entry in dropped:
        if entry.get("kind") == "sealed":
            folder = f"{sealed.sealed_prefix(settings)}{entry['backup_id']}/"
            first = sealed.manifest_key(settings, entry["backup_id"])
        else:
            folder = f"{sealed.barman_base_prefix(settings)}{entry['backup_id']}/"
            first = folder + "backup.info"  # barman's catalogue reads it: gone first, the backup is gone
        keys = [item.key for item in store.list_objects(folder)]
        store.delete_keys([key for key in keys if key == first])
        store.delete_keys([key for key in keys if key != first])
    prefix = sealed.sealed_prefix(settings)
    leftovers = sealed.incomplete_keys(prefix, _stamped(store, prefix), now or datetime.now(UTC))
    store.delete_keys(leftovers)
    for key, upload_id in store.stale_multipart_uploads(prefix, (now or datetime.now(UTC)) - sealed.INCOMPLETE_GRACE):
        store.abort_upload(key, upload_id)
    cut = sealed.wal_cut(kept)
    wal_keys = (
        sealed.wal_keys_to_delete([item.key for item in store.list_objects(sealed.wals_prefix(settings))], cut)
        if cut
        else []
    )
    store.delete_keys(wal_keys)
    return {"kept": len(kept), "deleted_backups": len(dropped), "deleted_wal": len(wal_keys), "wal_cut": cut}

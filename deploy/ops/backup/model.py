"""Pure rules of the backup store: ids, object keys, the manifest, listing and retention.

Nothing here touches S3, PostgreSQL or the clock; the caller passes `now` and object listings in,
so every rule is unit-tested with plain values.

Layout in the bucket, one folder per backup:
    <prefix><backup id>/dump.<ext>          the data (pg_dump custom format, compressed, maybe encrypted)
    <prefix><backup id>/manifest.json       written LAST: a backup without it is incomplete
    <prefix><backup id>/verification.json   the latest verify-backup result for that backup
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MANIFEST_NAME = "manifest.json"
VERIFICATION_NAME = "verification.json"
DATA_NAME_PREFIX = "dump."
MANIFEST_FORMAT_VERSION = 1
# Leftovers of a failed or running backup are only removed once they are clearly not running.
INCOMPLETE_GRACE = timedelta(days=1)


class ManifestError(ValueError):
    """A manifest object that cannot be understood (never treated as a usable backup)."""


# -- ids and keys ----------------------------------------------------------------------------


def new_backup_id(now: datetime, random_suffix: str | None = None) -> str:
    """`20261127T010923Z-3fa2c1`: sortable by eye, unique even for two backups in one second."""
    suffix = random_suffix if random_suffix is not None else secrets.token_hex(3)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{suffix}"


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip().lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def data_extension(compression: str, encrypted: bool) -> str:
    ext = {"zstd": "pgc.zst", "pg": "pgc"}[compression]
    return ext + ".enc" if encrypted else ext


def data_key(prefix: str, backup_id: str, compression: str, encrypted: bool) -> str:
    return f"{prefix}{backup_id}/{DATA_NAME_PREFIX}{data_extension(compression, encrypted)}"


def manifest_key(prefix: str, backup_id: str) -> str:
    return f"{prefix}{backup_id}/{MANIFEST_NAME}"


def verification_key(prefix: str, backup_id: str) -> str:
    return f"{prefix}{backup_id}/{VERIFICATION_NAME}"


def backup_id_of_key(prefix: str, key: str) -> str | None:
    """The backup id a key belongs to, or None for keys outside the layout."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    backup_id, sep, name = rest.partition("/")
    return backup_id if sep and backup_id and name else None


# -- manifest --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    database: str
    data_key: str
    size_bytes: int
    sha256: str
    compression: str  # "zstd" (pg_dump -Z0 | zstd) or "pg" (pg_dump's own compression)
    encryption: dict[str, Any] | None  # None, or {"algorithm", "salt", "key_check", "chunk_size"}
    server_version: str
    pg_dump_version: str
    release: dict[str, Any] | None
    migration_head: str | None
    row_counts: dict[str, int]
    started_at: str
    finished_at: str
    duration_seconds: float
    reason: str = "manual"  # manual | scheduled | safety (before a live restore)
    format_version: int = MANIFEST_FORMAT_VERSION
    host: str = ""

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def finished(self) -> datetime:
        return parse_time(self.finished_at)

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format_version") != MANIFEST_FORMAT_VERSION:
                raise ManifestError(f"unsupported manifest format_version {data.get('format_version')!r}")
            known = {f for f in cls.__dataclass_fields__}
            manifest = cls(**{k: v for k, v in data.items() if k in known})
            parse_time(manifest.finished_at)
            parse_time(manifest.started_at)
            if len(manifest.sha256) != 64 or manifest.compression not in ("zstd", "pg"):
                raise ManifestError("manifest has an invalid sha256 or compression")
            return manifest
        except ManifestError:
            raise
        except (ValueError, TypeError, AttributeError) as exc:
            raise ManifestError(f"unreadable manifest: {exc}") from None


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time without a timezone: {text!r}")
    return value


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


# -- listing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime


@dataclass
class BackupFolder:
    """Every object stored under one backup id."""

    backup_id: str
    objects: dict[str, StoredObject] = field(default_factory=dict)  # name inside the folder -> object

    @property
    def has_manifest(self) -> bool:
        return MANIFEST_NAME in self.objects

    @property
    def has_verification(self) -> bool:
        return VERIFICATION_NAME in self.objects

    @property
    def newest_modification(self) -> datetime:
        return max(obj.last_modified for obj in self.objects.values())

    @property
    def keys(self) -> list[str]:
        return sorted(obj.key for obj in self.objects.values())


def group_by_backup(prefix: str, objects: Iterable[StoredObject]) -> dict[str, BackupFolder]:
    folders: dict[str, BackupFolder] = {}
    for obj in objects:
        backup_id = backup_id_of_key(prefix, obj.key)
        if backup_id is None:
            continue
        name = obj.key[len(prefix) + len(backup_id) + 1 :]
        folders.setdefault(backup_id, BackupFolder(backup_id)).objects[name] = obj
    return folders


def is_complete(folder: BackupFolder, manifest: Manifest | None) -> bool:
    """Usable = a readable manifest AND the data object it names, with the size it records."""
    return manifest is not None and unusable_reason(folder, manifest) is None


def unusable_reason(folder: BackupFolder, manifest: Manifest | None) -> str | None:
    """Why a backup folder cannot be restored, in words an operator can act on (None: usable).

    `manifest` is the parsed manifest, None when there is none or it does not parse.
    """
    if manifest is None:
        if folder.has_manifest:
            return "its manifest is unreadable"
        return "no manifest (the backup never finished uploading)"
    if manifest.backup_id != folder.backup_id:
        return f"its manifest names another backup ({manifest.backup_id})"
    data_name = manifest.data_key.rsplit("/", 1)[-1]
    data = folder.objects.get(data_name)
    if data is None:
        return f"its data object {data_name} is missing"
    if data.size != manifest.size_bytes:
        return (
            f"size mismatch: {data_name} is {data.size} bytes, its manifest records {manifest.size_bytes} "
            f"(truncated or overwritten)"
        )
    return None


# -- retention -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionPlan:
    keep: list[str]
    delete_complete: list[str]
    delete_incomplete: list[str]
    # backup id -> why it stays, e.g. "newest; newest verified" (every id of `keep` has one)
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def delete(self) -> list[str]:
        return self.delete_complete + self.delete_incomplete


def plan_retention(
    complete: dict[str, datetime],
    incomplete: dict[str, datetime],
    now: datetime,
    retention_days: int,
    min_keep: int,
    verified: Iterable[str] = (),
) -> RetentionPlan:
    """Which backups go.

    complete: backup id -> the manifest's finished time (never the name: ids are only a hint).
    incomplete: backup id -> newest modification of its objects (no usable manifest).
    verified: ids of complete backups whose latest verify-backup passed.
    Keeps everything newer than the window, and whatever is older as long as fewer than
    `min_keep` (at least 1: the newest complete backup always stays) would otherwise remain.
    Also keeps the newest verified backup whatever its age: when recent drills all fail, the
    last backup known to restore is the one that must survive.
    """
    cutoff = now - timedelta(days=retention_days)
    newest_first = sorted(complete, key=lambda backup_id: (complete[backup_id], backup_id), reverse=True)
    verified_ids = set(verified)
    newest_verified = next((backup_id for backup_id in newest_first if backup_id in verified_ids), None)
    floor = max(1, min_keep)
    keep: list[str] = []
    reasons: dict[str, str] = {}
    delete_complete: list[str] = []
    for rank, backup_id in enumerate(newest_first):
        why = []
        if rank == 0:
            why.append("newest")
        elif rank < floor:
            why.append(f"among the newest {floor}")
        if complete[backup_id] >= cutoff:
            why.append(f"younger than {retention_days} days")
        if backup_id == newest_verified:
            why.append("newest verified")
        if why:
            keep.append(backup_id)
            reasons[backup_id] = "; ".join(why)
        else:
            delete_complete.append(backup_id)
    delete_incomplete = sorted(
        backup_id for backup_id, modified in incomplete.items() if modified < now - INCOMPLETE_GRACE
    )
    return RetentionPlan(
        keep=keep, delete_complete=delete_complete, delete_incomplete=delete_incomplete, reasons=reasons
    )


# -- presentation ----------------------------------------------------------------------------


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def verification_label(verification: dict[str, Any] | None) -> str:
    if verification is None:
        return "no"
    when = str(verification.get("verified_at", ""))[:19].replace("T", " ")
    return f"yes {when}" if verification.get("ok") else f"FAILED {when}"


def format_backup_table(rows: list[dict[str, str]]) -> str:
    """Fixed-width table of the `backups` listing (rows already ordered)."""
    columns = ["id", "finished", "size", "release", "migration", "encrypted", "verified"]
    widths = {col: max([len(col)] + [len(row.get(col, "")) for row in rows]) for col in columns}
    lines = ["  ".join(col.upper().ljust(widths[col]) for col in columns).rstrip()]
    for row in rows:
        lines.append("  ".join(row.get(col, "").ljust(widths[col]) for col in columns).rstrip())
    return "\n".join(lines)


def listing_row(manifest: Manifest, verification: dict[str, Any] | None) -> dict[str, str]:
    release = (manifest.release or {}).get("version") or "dev"
    return {
        "id": manifest.backup_id,
        "finished": manifest.finished.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "size": human_size(manifest.size_bytes),
        "release": release,
        "migration": (manifest.migration_head or "-").split("_")[0],
        "encrypted": "yes" if manifest.encrypted else "no",
        "verified": verification_label(verification),
    }

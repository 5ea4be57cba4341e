"""Pure rules of log archival: which files are rotated, their keys in the bucket, what expires.

The app writes `app-<port>.log` and rotates it into `app-<port>.<YYYY-MM-DD_HH-MM-SS_ffffff>.log`
beside it (loguru). The other logs of shared/logs (nginx's access and error logs, cron.log,
switch.log, ops-errors.log) have no rotation of their own: archive-logs rotates them into the same
`<stem>.<timestamp>.log` form (PLAIN_LOGS says how), so they are archived and expire alike. Archival compresses a rotated file into `<name>.gz` in place, uploads that to
`<LOG_ARCHIVE_PREFIX><host label>/<name>.gz`, and deletes the local copy only once the upload was
verified and the file is older than the local keep period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

# Each log that archive-logs rotates itself, and how: "reopen" renames it and has the writer open a
# new one (nginx, on SIGUSR1: nothing is lost); "copy-truncate" copies it and empties it in place,
# because its writers append with `>>` and some (cron's archive-logs itself) still hold it open.
PLAIN_LOGS = {
    "nginx-access.log": "reopen",
    "nginx-error.log": "reopen",
    "cron.log": "copy-truncate",
    "switch.log": "copy-truncate",
    "ops-errors.log": "copy-truncate",
}
_STEMS = "|".join(re.escape(name.removesuffix(".log")) for name in PLAIN_LOGS)
ROTATED = re.compile(
    r"^(?P<stem>app-\d+|" + _STEMS + r")\.(?P<stamp>\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d{6})\.log(?P<gz>\.gz)?$"
)
STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S_%f"
DEFAULT_BUCKET_RETENTION_DAYS = 30  # operation-plan §4.2
DEFAULT_KEEP_LOCAL_DAYS = 7


def rotated_time(name: str) -> datetime | None:
    """The timestamp in a rotated file's name (raw or .gz), None for anything else (the live file)."""
    match = ROTATED.match(PurePosixPath(name).name)
    if not match:
        return None
    return datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)


def is_compressed(name: str) -> bool:
    return name.endswith(".gz")


def compressed_name(name: str) -> str:
    return name if is_compressed(name) else name + ".gz"


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip().lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def host_label_ok(label: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", label))


def archive_key(prefix: str, host_label: str, name: str) -> str:
    """`logs/app1/app-8001.2026-11-27_00-00-00_000000.log.gz`."""
    return f"{normalise_prefix(prefix)}{host_label}/{compressed_name(PurePosixPath(name).name)}"


def keep_locally(name: str, now: datetime, keep_days: int) -> bool:
    """Rotated files younger than `keep_days` stay on disk (after archival) for quick grepping."""
    when = rotated_time(name)
    return when is not None and now - when < timedelta(days=keep_days)


@dataclass(frozen=True)
class BucketObject:
    key: str
    size: int
    last_modified: datetime


def expired_keys(objects: list[BucketObject], now: datetime, retention_days: int) -> list[str]:
    """Archives older than the retention: by the rotation time in the name, else by LastModified."""
    cutoff = now - timedelta(days=retention_days)
    expired = []
    for item in objects:
        when = rotated_time(item.key) or item.last_modified
        if when < cutoff:
            expired.append(item.key)
    return sorted(expired)


def rotated_files(names: list[str]) -> list[str]:
    """Rotated files among a folder's names; when both raw and .gz exist the raw one is a leftover
    of an interrupted compression and is compressed again (the .gz may be partial)."""
    return sorted(name for name in names if rotated_time(name) is not None)


@dataclass(frozen=True)
class Rotation:
    live: str
    rotated: str
    method: str  # a PLAIN_LOGS value


def plain_log_rotations(sizes: dict[str, int], now: datetime) -> list[Rotation]:
    """The plain logs (by name, with their sizes in bytes) to rotate now: the non-empty ones."""
    stamp = now.astimezone(UTC).strftime(STAMP_FORMAT)
    return [
        Rotation(name, f"{name.removesuffix('.log')}.{stamp}.log", method)
        for name, method in PLAIN_LOGS.items()
        if sizes.get(name, 0) > 0
    ]

"""Our own base backups, sealed on the host (ADR 0045): keys, manifest, pg_basebackup's argv and output,
and the retention of base backups and WAL.

Pure, like barman.py: the caller passes listings and clocks in. Layout in the bucket, beside barman's
`base/` and `wals/` folders of the same server:

    <prefix>/<server>/sealed/<backup id>/base.tar.gz.enc   pg_basebackup's tar, gzip, AES-256-GCM
    <prefix>/<server>/sealed/<backup id>/manifest.json     written LAST: a backup without it is ignored
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deploy.ops.pitr.barman import PitrSettings, PitrSettingsError, parse_barman_time

FORMAT = "clicknback-pitr-base-1"
MANIFEST_NAME = "manifest.json"
# A folder without its manifest this old is a failed backup, not one still uploading.
INCOMPLETE_GRACE = timedelta(days=1)
TAR_BLOCK = 512
LABEL_NAME = "backup_label"
# backup_label is a few hundred bytes; the server sends it first in the main tablespace's tar.
LABEL_LIMIT = 64 * 1024
TAIL_LIMIT = 64 * 1024
WAL_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{16})(\.[0-9A-F]{8}\.backup)?(\.[a-z0-9]+)?$")


class ManifestError(ValueError):
    """A manifest that cannot be read: its backup is treated as incomplete."""


def sealed_prefix(settings: PitrSettings) -> str:
    return f"{settings.prefix}/{settings.server_name}/sealed/"


def barman_base_prefix(settings: PitrSettings) -> str:
    return f"{settings.prefix}/{settings.server_name}/base/"


def wals_prefix(settings: PitrSettings) -> str:
    return f"{settings.prefix}/{settings.server_name}/wals/"


def data_key(settings: PitrSettings, backup_id: str, encrypted: bool) -> str:
    return f"{sealed_prefix(settings)}{backup_id}/base.tar.gz" + (".enc" if encrypted else "")


def manifest_key(settings: PitrSettings, backup_id: str) -> str:
    return f"{sealed_prefix(settings)}{backup_id}/{MANIFEST_NAME}"


def basebackup_argv(bindir: str, host: str, port: int, user: str) -> list[str]:
    """A plain tar on stdout; the archive already holds the WAL (-X none), so the server waits until
    the backup's last segment is archived before pg_basebackup ends, and the backup is then restorable."""
    return [
        f"{bindir.rstrip('/')}/pg_basebackup",
        "--pgdata=-",
        "--format=tar",
        "--wal-method=none",
        "--checkpoint=fast",
        # The manifest rides at the tar's end and names the stop LSN; sha256 and the GCM tags check
        # the files, so it carries no checksums of its own.
        "--manifest-checksums=NONE",
        "--verbose",
        "--no-password",
        "--host",
        host,
        "--port",
        str(port),
        "--username",
        user,
    ]


@dataclass(frozen=True)
class Label:
    start_lsn: str
    start_wal: str
    timeline: int


def parse_backup_label(text: str) -> Label:
    """`START WAL LOCATION: 0/2000028 (file 000000010000000000000002)` and `START TIMELINE: 1`."""
    location = re.search(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)$", text, re.M)
    timeline = re.search(r"^START TIMELINE: (\d+)$", text, re.M)
    if not location or not timeline:
        raise PitrSettingsError("pg_basebackup's backup_label has no START WAL LOCATION or START TIMELINE")
    return Label(location.group(1), location.group(2), int(timeline.group(1)))


def parse_stop_lsn(manifest_tail: str) -> str:
    """The backup's End-LSN, from the WAL-Ranges at the end of the backup_manifest pg_basebackup
    appends to a tar on stdout (it prints no end point then)."""
    found = re.findall(r'"End-LSN":\s*"([0-9A-F]+/[0-9A-F]+)"', manifest_tail)
    if not found:
        raise PitrSettingsError("the base backup's tar ends without a backup_manifest naming its End-LSN")
    return found[-1]


class TailReader:
    """The last TAIL_LIMIT bytes of the stream, where backup_manifest's WAL-Ranges sit."""

    def __init__(self) -> None:
        self._tail = bytearray()

    def feed(self, data: bytes) -> None:
        self._tail += data[-TAIL_LIMIT:]
        if len(self._tail) > TAIL_LIMIT:
            del self._tail[: len(self._tail) - TAIL_LIMIT]

    def stop_lsn(self) -> str:
        return parse_stop_lsn(self._tail.decode(errors="replace"))


class LabelReader:
    """Reads backup_label off the head of the tar stream as it passes, holding at most LABEL_LIMIT bytes."""

    def __init__(self) -> None:
        self._head = bytearray()
        self.text: str | None = None

    def feed(self, data: bytes) -> None:
        if self.text is not None or len(self._head) >= LABEL_LIMIT:
            return
        self._head += data[: LABEL_LIMIT - len(self._head)]
        if len(self._head) < TAR_BLOCK:
            return
        name = bytes(self._head[:100]).split(b"\0", 1)[0].decode(errors="replace")
        if name != LABEL_NAME:
            self._head = bytearray(LABEL_LIMIT)  # not first: stop looking, label() says so
            return
        size = int(bytes(self._head[124:136]).split(b"\0", 1)[0].strip() or b"0", 8)
        if len(self._head) >= TAR_BLOCK + size:
            self.text = bytes(self._head[TAR_BLOCK : TAR_BLOCK + size]).decode()
            self._head.clear()

    def label(self) -> Label:
        if self.text is None:
            raise PitrSettingsError("the base backup's tar does not start with backup_label")
        return parse_backup_label(self.text)


@dataclass(frozen=True)
class BaseManifest:
    backup_id: str
    server_name: str
    begin_time: str
    end_time: str
    begin_lsn: str
    end_lsn: str
    timeline: int
    begin_wal: str
    data_key: str
    size_bytes: int
    sha256: str
    encryption: dict[str, Any] | None = None
    compression: str = "gzip"
    format: str = FORMAT
    host: str = field(default="")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> BaseManifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ManifestError(f"unknown base backup format {data.get('format')!r}")
            manifest = cls(**data)
        except (ValueError, TypeError, AttributeError) as error:
            raise ManifestError(f"unreadable base backup manifest: {error}") from None
        if not WAL_NAME.match(manifest.begin_wal) or manifest.size_bytes < 0 or len(manifest.sha256) != 64:
            raise ManifestError(f"base backup manifest {manifest.backup_id} has an invalid field")
        return manifest

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    def entry(self) -> dict[str, Any]:
        """Its line in `backups`, in the fields barman-cloud-backup-list prints for barman's own."""
        return {
            "backup_id": self.backup_id,
            "kind": "sealed",
            "status": "DONE",
            "begin_time": self.begin_time,
            "end_time": self.end_time,
            "begin_wal": self.begin_wal,
            "begin_lsn": self.begin_lsn,
            "end_lsn": self.end_lsn,
            "timeline": self.timeline,
            "size_bytes": self.size_bytes,
            "encrypted": self.encrypted,
        }


def folders(prefix: str, keys: Iterable[tuple[str, datetime]]) -> dict[str, list[tuple[str, datetime]]]:
    """Objects grouped by the backup folder they sit in, directly under `prefix`."""
    grouped: dict[str, list[tuple[str, datetime]]] = {}
    for key, modified in keys:
        backup_id, sep, rest = key[len(prefix) :].partition("/")
        if key.startswith(prefix) and sep and backup_id and rest:
            grouped.setdefault(backup_id, []).append((key, modified))
    return grouped


def incomplete_keys(prefix: str, keys: Iterable[tuple[str, datetime]], now: datetime) -> list[str]:
    """Every object of a sealed folder without a manifest whose newest object is past the grace."""
    doomed: list[str] = []
    for _backup_id, objects in folders(prefix, keys).items():
        if any(key.endswith("/" + MANIFEST_NAME) for key, _ in objects):
            continue
        if now - max(modified for _, modified in objects) > INCOMPLETE_GRACE:
            doomed += [key for key, _ in objects]
    return doomed


def plan_retention(entries: list[dict], redundancy: int) -> tuple[list[dict], list[dict]]:
    """(kept, dropped): the `redundancy` newest finished backups of either kind are kept."""
    done = [entry for entry in entries if entry.get("status") == "DONE" and entry.get("end_time")]
    newest = sorted(done, key=lambda entry: parse_barman_time(entry["end_time"]), reverse=True)
    return newest[:redundancy], newest[redundancy:]


def wal_position(name: str) -> tuple[int, str]:
    return int(name[:8], 16), name[8:24]


def wal_cut(kept: list[dict]) -> str | None:
    """The oldest kept backup's first segment: replay from any kept backup needs nothing before it."""
    starts = [entry["begin_wal"] for entry in kept if WAL_NAME.match(str(entry.get("begin_wal") or ""))]
    if len(starts) != len(kept) or not starts:
        return None  # a kept backup of unknown start: delete no WAL rather than guess
    return min(starts, key=lambda name: (name[8:24], int(name[:8], 16)))


def wal_keys_to_delete(keys: Iterable[str], cut: str) -> list[str]:
    """Segments (and their .backup files) before `cut` on its timeline or an older one; never .history.

    Timelines only grow, and a later timeline starts where its parent stopped, so a segment before
    the cut's position on the cut's timeline or an older one is older than every kept backup.
    """
    cut_timeline, cut_position = wal_position(cut)
    doomed = []
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        match = WAL_NAME.match(name)
        if not match:
            continue  # .history files and anything we do not know stay
        timeline, position = wal_position(name)
        if timeline <= cut_timeline and position < cut_position:
            doomed.append(key)
    return doomed

"""`clicknback-ops archive-logs`: rotate the plain logs, compress rotated logs, ship them, apply retention.

First the logs nothing else rotates (nginx-access.log, nginx-error.log, cron.log, switch.log,
ops-errors.log) become `<name>.<timestamp>.log`: nginx's are renamed and nginx (its pid in
<deploy root>/nginx/nginx.pid) reopens new ones on SIGUSR1 (the renamed ones are compressed by the
next run, once no worker can still write to them); the others are copied and emptied in place, as
their writers append with `>>`. Then, for every rotated `<name>.<timestamp>.log` in the
logs folder (the app's `app-<port>.<timestamp>.log` and those): gzip it in place (`.log.gz`,
written aside and renamed, so a crash never leaves a half file under the final name), upload it to
`<LOG_ARCHIVE_PREFIX><host label>/` and check the upload (size, MD5 ETag and our sha256 metadata
read back from the bucket). A local file is deleted only when its upload is verified AND it is
older than LOG_KEEP_LOCAL_DAYS (default 7); a failed upload keeps it for the next run. Then
archives older than LOG_ARCHIVE_RETENTION_DAYS (default 30) are deleted from the bucket.

Exit statuses: 0 done; 1 at least one file could not be archived (it is kept); 2 bad configuration.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from deploy.ops.logs import model
from deploy.ops.settings import require
from server.config import ConfigError

if TYPE_CHECKING:  # boto3 is imported only when archive-logs runs: every other ops command starts faster
    from deploy.ops.backup.store import S3Store

S3_VARIABLES = ["S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "archive-logs",
        help="compress rotated logs, upload them (verified) to the bucket, apply retention",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--logs-dir",
        metavar="DIR",
        help="folder of the app's log files (default: logs/ beside ENV_FILE, i.e. shared/logs)",
    )
    parser.add_argument(
        "--host-label",
        metavar="NAME",
        help="folder of this host in the bucket (default: $LOG_ARCHIVE_HOST, else the hostname)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be compressed, uploaded and deleted; change nothing (the bucket is only listed)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line at the end")
    parser.set_defaults(handler=run)


@dataclass
class ArchiveSettings:
    logs_dir: Path
    host_label: str
    prefix: str
    keep_local_days: int
    retention_days: int
    store: S3Store = field(repr=False)

    @property
    def nginx_pid_file(self) -> Path:
        """<deploy root>/nginx/nginx.pid, the deploy root being two levels above shared/logs."""
        return self.logs_dir.resolve().parent.parent / "nginx" / "nginx.pid"


@dataclass
class ArchiveSummary:
    compressed: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    already_archived: list[str] = field(default_factory=list)
    deleted_locally: list[str] = field(default_factory=list)
    kept_locally: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    expired_in_bucket: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    # A dry run changes nothing: these say what it would have done.
    would_rotate: list[str] = field(default_factory=list)
    would_compress: list[str] = field(default_factory=list)
    would_upload: list[str] = field(default_factory=list)
    would_delete_locally: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def line(self, dry_run: bool) -> str:
        """The closing line: a dry run counts what it would do, not the nothing it did."""
        if dry_run:
            return (
                f"would rotate {len(self.would_rotate)}, would compress {len(self.would_compress)}, "
                f"would upload {len(self.would_upload)} (or find them already archived), "
                f"would delete locally {len(self.would_delete_locally)}, "
                f"would expire {len(self.expired_in_bucket)} in the bucket, {len(self.failed)} failed "
                "(dry run: nothing changed)"
            )
        return (
            f"{len(self.rotated)} rotated, {len(self.uploaded)} uploaded, "
            f"{len(self.already_archived)} already archived, {len(self.deleted_locally)} deleted locally, "
            f"{len(self.kept_locally)} kept locally, {len(self.expired_in_bucket)} expired in the bucket, "
            f"{len(self.failed)} failed"
        )


def default_logs_dir(env: dict[str, str]) -> Path:
    env_file = env.get("ENV_FILE") or os.environ.get("ENV_FILE")
    return (Path(env_file).parent / "logs") if env_file else Path("logs")


def _days(env: dict[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(name, f"expected a positive number of days, got {raw!r}")
    return int(raw)


def load_settings(args: argparse.Namespace) -> ArchiveSettings:
    from deploy.ops.backup.store import S3Store

    env = require(S3_VARIABLES)
    label = args.host_label or env.get("LOG_ARCHIVE_HOST") or socket.gethostname()
    if not model.host_label_ok(label):
        raise ConfigError("--host-label", f"{label!r}: use letters, digits, '.', '_' and '-'")
    store = S3Store(
        env.get("S3_ENDPOINT_URL") or None,
        env["S3_BUCKET"],
        env.get("S3_REGION") or "us-east-1",
        env["S3_ACCESS_KEY_ID"],
        env["S3_SECRET_ACCESS_KEY"],
        env.get("S3_ADDRESSING_STYLE") or "path",
    )
    return ArchiveSettings(
        logs_dir=Path(args.logs_dir) if args.logs_dir else default_logs_dir(env),
        host_label=label,
        prefix=model.normalise_prefix(env.get("LOG_ARCHIVE_PREFIX") or "logs/"),
        keep_local_days=_days(env, "LOG_KEEP_LOCAL_DAYS", model.DEFAULT_KEEP_LOCAL_DAYS),
        retention_days=_days(env, "LOG_ARCHIVE_RETENTION_DAYS", model.DEFAULT_BUCKET_RETENTION_DAYS),
        store=store,
    )


def compress(path: Path) -> Path:
    """`x.log` -> `x.log.gz` (deterministic bytes: no name or mtime in the header), raw file removed."""
    target = path.with_name(path.name + ".gz")
    partial = path.with_name(path.name + ".gz.partial")
    with open(path, "rb") as source, open(partial, "wb") as raw_out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0) as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        raw_out.flush()
        os.fsync(raw_out.fileno())
    os.replace(partial, target)
    path.unlink()
    return target


def nginx_master(pid_file: Path) -> int | None:
    """The pid of the deploy root's nginx master when it runs, else None."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def copy_truncate(live: Path, rotated: Path) -> None:
    """Copy `live` aside (written to a temp name, then renamed) and empty it in place. Its writers
    append (O_APPEND), so their next line starts the emptied file; a line written between the copy
    and the truncation is the only loss."""
    partial = rotated.with_name(rotated.name + ".partial")
    shutil.copyfile(live, partial)
    os.replace(partial, rotated)
    os.truncate(live, 0)


def rotate_plain_logs(
    logs_dir: Path, nginx_pid_file: Path, now: datetime, dry_run: bool, say, summary: ArchiveSummary
) -> set[str]:
    """Rotate the plain logs (logs_model.PLAIN_LOGS). Returns the files nginx may still write to:
    its workers reopen their logs a moment after the signal, so a file renamed now is compressed by
    the next run, when no line can still be on its way into it."""
    sizes = {}
    for name in model.PLAIN_LOGS:
        try:
            sizes[name] = (logs_dir / name).stat().st_size
        except OSError:
            continue
    rotations = model.plain_log_rotations(sizes, now)
    if dry_run:
        for rotation in rotations:
            say(f"would rotate {rotation.live} to {rotation.rotated} ({rotation.method})")
            summary.would_rotate.append(rotation.live)
        return set()
    reopened = set()
    for rotation in rotations:
        live, rotated = logs_dir / rotation.live, logs_dir / rotation.rotated
        if rotation.method == "reopen":
            os.rename(live, rotated)
            reopened.add(rotation.rotated)
        else:
            copy_truncate(live, rotated)
        summary.rotated.append(rotation.rotated)
        say(f"rotated {rotation.live} to {rotation.rotated}")
    pid = nginx_master(nginx_pid_file) if reopened else None
    if pid is not None:
        os.kill(pid, signal.SIGUSR1)  # nginx -s reopen: flush the buffers, open new files
    # Not running: nginx creates new files when it starts, and nothing holds the renamed ones.
    return reopened if pid is not None else set()


class UploadError(RuntimeError):
    pass


def upload_verified(store: S3Store, key: str, path: Path) -> None:
    """Upload one file and read its size, ETag and sha256 back; raises UploadError unless all match."""
    from botocore.exceptions import BotoCoreError, ClientError

    body = path.read_bytes()
    md5 = hashlib.md5(body).digest()  # noqa: S324 - S3's integrity check, not security
    sha256 = hashlib.sha256(body).hexdigest()
    try:
        store.client.put_object(
            Bucket=store.bucket,
            Key=key,
            Body=body,
            ContentMD5=base64.b64encode(md5).decode(),
            ContentType="application/gzip",
            Metadata={"sha256": sha256},
        )
        head = store.client.head_object(Bucket=store.bucket, Key=key)
    except (BotoCoreError, ClientError) as error:
        raise UploadError(_describe_s3_error(error, store)) from None
    problems = []
    if head.get("ContentLength") != len(body):
        problems.append(f"size {head.get('ContentLength')} != {len(body)}")
    if head.get("ETag", "").strip('"') != md5.hex():
        problems.append(f"ETag {head.get('ETag')} != md5 {md5.hex()}")
    if (head.get("Metadata") or {}).get("sha256") != sha256:
        problems.append("sha256 metadata differs")
    if problems:
        raise UploadError("upload not verified: " + "; ".join(problems))


def existing_archive(store: S3Store, key: str, path: Path) -> bool:
    """True when the bucket already holds exactly this file (a previous run uploaded it)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head = store.client.head_object(Bucket=store.bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise UploadError(_describe_s3_error(error, store)) from None
    except BotoCoreError as error:
        raise UploadError(_describe_s3_error(error, store)) from None
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    if (head.get("Metadata") or {}).get("sha256") == sha256:
        return True
    raise UploadError(
        f"{key} already exists in the bucket with different content: not overwriting "
        f"(another host with the same label? pass --host-label)"
    )


def _describe_s3_error(error: Exception, store: S3Store) -> str:
    from botocore.exceptions import ClientError

    where = f"bucket {store.bucket!r} at {store.endpoint_url or 'AWS S3'}"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "?")
        return f"S3 {code}: {error.response.get('Error', {}).get('Message') or code} ({where})"
    return f"{type(error).__name__}: {error} ({where})"


def archive(settings: ArchiveSettings, now: datetime, dry_run: bool, out: TextIO) -> ArchiveSummary:
    from deploy.ops.backup.store import StoreError

    summary = ArchiveSummary()
    say = lambda message: print(f"archive-logs: {message}", file=out, flush=True)  # noqa: E731
    if not settings.logs_dir.is_dir():
        say(f"no log folder {settings.logs_dir}: nothing to archive")
    still_open: set[str] = set()
    if settings.logs_dir.is_dir():
        try:
            still_open = rotate_plain_logs(settings.logs_dir, settings.nginx_pid_file, now, dry_run, say, summary)
        except OSError as error:
            summary.failed["(rotation)"] = str(error)
            say(f"FAILED rotation: {error}")
    names = sorted(p.name for p in settings.logs_dir.iterdir()) if settings.logs_dir.is_dir() else []
    rotated = [name for name in model.rotated_files(names) if name not in still_open]
    raw = [n for n in rotated if not model.is_compressed(n)]
    for name in raw:
        if dry_run:
            say(f"would compress {name}")
            summary.would_compress.append(name)
            continue
        compress(settings.logs_dir / name)
        summary.compressed.append(name)
    gz_names = sorted({model.compressed_name(n) for n in rotated})
    for name in gz_names:
        key = model.archive_key(settings.prefix, settings.host_label, name)
        path = settings.logs_dir / name
        keep = model.keep_locally(name, now, settings.keep_local_days)
        if dry_run:
            say(f"would upload {name} to {key}" + ("" if keep else " and then delete it locally"))
            summary.would_upload.append(name)
            if not keep:
                summary.would_delete_locally.append(name)
            continue
        try:
            if existing_archive(settings.store, key, path):
                summary.already_archived.append(name)
            else:
                upload_verified(settings.store, key, path)
                summary.uploaded.append(name)
                say(f"uploaded {name} -> s3://{settings.store.bucket}/{key} ({path.stat().st_size} bytes, verified)")
        except (UploadError, OSError) as error:
            summary.failed[name] = str(error)
            say(f"FAILED {name}: {error}; the local file is kept")
            continue
        if keep:
            summary.kept_locally.append(name)
        else:
            path.unlink()
            summary.deleted_locally.append(name)
            say(f"deleted local {name} (archived, older than {settings.keep_local_days} days)")
    try:
        objects = [
            model.BucketObject(o.key, o.size, o.last_modified)
            for o in settings.store.list_objects(f"{settings.prefix}{settings.host_label}/")
        ]
        expired = model.expired_keys(objects, now, settings.retention_days)
        if expired and not dry_run:
            settings.store.delete_keys(expired)
        summary.expired_in_bucket = expired
        for key in expired:
            say(
                f"{'would delete' if dry_run else 'deleted'} expired archive {key} "
                f"(older than {settings.retention_days} days)"
            )
    except StoreError as error:
        summary.failed["(retention)"] = str(error)
        say(f"FAILED retention: {error}")
    say(summary.line(dry_run))
    return summary


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    summary = archive(settings, datetime.now(UTC), args.dry_run, sys.stdout)
    if args.json:
        print(json.dumps(summary.to_json(), sort_keys=True))
    return 1 if summary.failed else 0

"""barman-cloud commands, PostgreSQL archive and recovery settings, and the choice of base backup.

Everything here is pure: it turns settings into argv lists and configuration lines, so each rule is
unit-tested without a database or a bucket. The same settings come from the host's secrets file
(the S3_* variables the dumps use, plus the PITR_* ones below) on the primary and on a restore.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Debian's barman-cli-cloud puts the tools on PATH; PITR_BARMAN_BIN points elsewhere in tests or
# on a host that installed barman another way.
DEFAULT_BIN_DIR = "/usr/bin"
DEFAULT_PREFIX = "pitr"
DEFAULT_SERVER_NAME = "clicknback"
# A segment is archived at the latest this long after its first write: the RPO bound of async archiving.
DEFAULT_ARCHIVE_TIMEOUT_SECONDS = 60
DEFAULT_REDUNDANCY = 4
MIN_KEY_LENGTH = 32


class PitrSettingsError(ValueError):
    """A PITR setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class PitrSettings:
    bucket: str
    endpoint_url: str | None
    region: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    prefix: str = DEFAULT_PREFIX
    server_name: str = DEFAULT_SERVER_NAME
    encryption_key: str | None = field(default=None, repr=False)
    redundancy: int = DEFAULT_REDUNDANCY
    bin_dir: str = DEFAULT_BIN_DIR
    server_side_encryption: str | None = None
    addressing_style: str = "path"

    @property
    def destination_url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def tool(self, name: str) -> str:
        return f"{self.bin_dir.rstrip('/')}/{name}"

    def cloud_env(self) -> dict[str, str]:
        """boto3's credentials, passed in the environment so they never appear in a process list."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def cloud_args(self) -> list[str]:
        args = ["--cloud-provider", "aws-s3"]
        if self.endpoint_url:
            args += ["--endpoint-url", self.endpoint_url]
        return args


def load_pitr_settings(env: Mapping[str, str]) -> PitrSettings:
    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            raise PitrSettingsError(f"{name} is required for WAL archiving")
        return value

    prefix = (env.get("PITR_PREFIX", "") or DEFAULT_PREFIX).strip().strip("/")
    if not prefix or any(part in ("", ".", "..") for part in prefix.split("/")):
        raise PitrSettingsError(f"PITR_PREFIX must be a plain path such as pitr, got {prefix!r}")
    name = (env.get("PITR_SERVER_NAME", "") or DEFAULT_SERVER_NAME).strip()
    if not name.replace("-", "").replace("_", "").isalnum():
        raise PitrSettingsError(f"PITR_SERVER_NAME takes letters, digits, - and _, got {name!r}")
    key = env.get("BACKUP_ENCRYPTION_KEY", "") or None
    if key is not None and len(key) < MIN_KEY_LENGTH:
        raise PitrSettingsError(f"BACKUP_ENCRYPTION_KEY must be at least {MIN_KEY_LENGTH} characters")
    raw_redundancy = (env.get("PITR_REDUNDANCY", "") or str(DEFAULT_REDUNDANCY)).strip()
    if not raw_redundancy.isdigit() or int(raw_redundancy) < 1:
        raise PitrSettingsError(f"PITR_REDUNDANCY takes a whole number of base backups >= 1, got {raw_redundancy!r}")
    sse = (env.get("PITR_S3_SSE", "") or "").strip() or None
    if sse not in (None, "AES256", "aws:kms"):
        raise PitrSettingsError(f"PITR_S3_SSE takes AES256 or aws:kms, got {sse!r}")
    style = (env.get("S3_ADDRESSING_STYLE", "") or "path").strip()
    if style not in ("path", "virtual", "auto"):
        raise PitrSettingsError(f"S3_ADDRESSING_STYLE takes path, virtual or auto, got {style!r}")
    return PitrSettings(
        bucket=required("S3_BUCKET"),
        endpoint_url=env.get("S3_ENDPOINT_URL", "").strip() or None,
        region=(env.get("S3_REGION", "") or "us-east-1").strip(),
        access_key_id=required("S3_ACCESS_KEY_ID"),
        secret_access_key=required("S3_SECRET_ACCESS_KEY"),
        prefix=prefix,
        server_name=name,
        encryption_key=key,
        redundancy=int(raw_redundancy),
        bin_dir=(env.get("PITR_BARMAN_BIN", "") or DEFAULT_BIN_DIR).strip(),
        server_side_encryption=sse,
        addressing_style=style,
    )


def _sse_args(settings: PitrSettings) -> list[str]:
    return ["--encryption", settings.server_side_encryption] if settings.server_side_encryption else []


def wal_archive_argv(settings: PitrSettings, wal_path: str, compress: bool) -> list[str]:
    gzip = ["--gzip"] if compress else []
    return [
        settings.tool("barman-cloud-wal-archive"),
        *settings.cloud_args(),
        *gzip,
        *_sse_args(settings),
        settings.destination_url,
        settings.server_name,
        wal_path,
    ]


def wal_restore_argv(settings: PitrSettings, wal_name: str, destination: str) -> list[str]:
    return [
        settings.tool("barman-cloud-wal-restore"),
        *settings.cloud_args(),
        settings.destination_url,
        settings.server_name,
        wal_name,
        destination,
    ]


def base_backup_argv(settings: PitrSettings, host: str, port: int, user: str) -> list[str]:
    """barman's base backup, unsealed: no longer scheduled (ADR 0045), kept so tests and the bench can
    lay one down beside ours, as a host upgraded mid-retention has them."""
    return [
        settings.tool("barman-cloud-backup"),
        *settings.cloud_args(),
        "--gzip",
        "--immediate-checkpoint",
        *_sse_args(settings),
        "--host",
        host,
        "--port",
        str(port),
        "--user",
        user,
        settings.destination_url,
        settings.server_name,
    ]


def backup_list_argv(settings: PitrSettings) -> list[str]:
    return [
        settings.tool("barman-cloud-backup-list"),
        *settings.cloud_args(),
        "--format",
        "json",
        settings.destination_url,
        settings.server_name,
    ]


def restore_argv(settings: PitrSettings, backup_id: str, data_dir: str) -> list[str]:
    return [
        settings.tool("barman-cloud-restore"),
        *settings.cloud_args(),
        settings.destination_url,
        settings.server_name,
        backup_id,
        data_dir,
    ]


def wal_command(python: str, code_dir: str, env_file: str, action: str) -> str:
    """archive_command / restore_command: our wrapper (client-side encryption) under system python3."""
    placeholders = "%p" if action == "push" else "%f %p"
    return (
        f"PYTHONPATH={shlex.quote(code_dir)} {shlex.quote(python)} -m deploy.ops.pitr.wal "
        f"--env-file {shlex.quote(env_file)} {action} {placeholders}"
    )


def archive_settings(archive_command: str, timeout_seconds: int = DEFAULT_ARCHIVE_TIMEOUT_SECONDS) -> dict[str, str]:
    """What the primary needs (archive_mode needs a restart, the rest a reload)."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": archive_command,
        "archive_timeout": f"{timeout_seconds}s",
    }


def alter_system_sql(settings: Mapping[str, str]) -> list[str]:
    return [f"ALTER SYSTEM SET {name} = {sql_literal(value)}" for name, value in settings.items()]


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def recovery_settings(restore_command: str, target_time: datetime | None, live: bool = False) -> dict[str, str]:
    """Replay the archive to a time (inclusive: a commit at exactly that time is kept) or to its end.

    A scratch copy never archives itself: its timeline would be pushed into the primary's archive.
    A live restore keeps the primary's archiving, so its new timeline (history file included) is
    archived from the promotion on and later restores can follow it.
    """
    settings = {"restore_command": restore_command, "recovery_target_timeline": "latest"}
    if not live:
        settings["archive_mode"] = "off"
    if target_time is not None:
        settings["recovery_target_time"] = to_postgres_time(target_time)
        settings["recovery_target_inclusive"] = "on"
        settings["recovery_target_action"] = "promote"
    return settings


def config_lines(settings: Mapping[str, str]) -> str:
    return "".join(f"{name} = {sql_literal(value)}\n" for name, value in settings.items())


def to_postgres_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise PitrSettingsError("a recovery target time needs a time zone (e.g. 2026-12-06T10:15:00Z)")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def parse_target_time(text: str) -> datetime:
    """`2026-12-06T10:15:00Z` or with an offset; a time without a zone is refused, never guessed."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise PitrSettingsError(
            f"--to-time takes an ISO 8601 time such as 2026-12-06T10:15:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise PitrSettingsError(f"--to-time needs a time zone (Z or +HH:MM), got {text!r}")
    return moment


def choose_backup(backups: list[dict], target_time: datetime | None) -> dict:
    """The newest finished base backup that ended before the target (replay starts from it).

    `backups` holds barman-cloud-backup-list's JSON `backups_list` entries (end_time in barman's
    format) and our sealed ones' (ISO 8601), each with its `kind`.
    """
    done = [b for b in backups if b.get("status") == "DONE" and b.get("end_time")]
    if not done:
        raise PitrSettingsError("no finished base backup in the archive: `invoke provision --pitr` takes one")
    ended = sorted(done, key=lambda b: parse_barman_time(b["end_time"]))
    if target_time is None:
        return ended[-1]
    usable = [b for b in ended if parse_barman_time(b["end_time"]) <= target_time]
    if not usable:
        first = parse_barman_time(ended[0]["end_time"]).isoformat()
        raise PitrSettingsError(f"no base backup ended before {target_time.isoformat()} (the oldest ended {first})")
    return usable[-1]


def parse_barman_time(text: str) -> datetime:
    """barman prints times such as `Sun Dec  6 21:40:00 2026` (local to the host) or ISO 8601."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

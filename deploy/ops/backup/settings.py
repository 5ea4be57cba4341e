"""Backup settings from the environment and ENV_FILE (the same loader the service uses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deploy.ops.backup.crypto import MIN_KEY_LENGTH
from deploy.ops.backup.model import normalise_prefix
from server.config import ConfigError, load_environment, validated_database_url

MIN_PART_SIZE = 64 * 1024  # real S3 providers need >= 5 MiB; smaller values are for tests


@dataclass(frozen=True)
class BackupSettings:
    database_url: str = field(repr=False)
    s3_endpoint_url: str | None
    s3_bucket: str
    s3_region: str
    s3_access_key_id: str = field(repr=False)
    s3_secret_access_key: str = field(repr=False)
    prefix: str = "backups/"
    encryption_key: str | None = field(default=None, repr=False)
    retention_days: int = 28
    min_keep: int = 4
    part_size: int = 8 * 1024 * 1024
    compression: str = "zstd"
    work_dir: Path | None = None
    s3_addressing_style: str = "path"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(name, "is required for backups")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    return value


def parse_size(name: str, raw: str) -> int:
    """`8M`, `512K`, `16777216` -> bytes."""
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    if not digits.isdigit():
        raise ConfigError(name, f"expected a size such as 8M, got {raw!r}")
    return int(digits) * factor


def load_backup_settings(environ: Mapping[str, str] | None = None) -> BackupSettings:
    env = load_environment(environ)
    database_url = validated_database_url("DATABASE_URL", _required(env, "DATABASE_URL"))  # the service's check
    key = env.get("BACKUP_ENCRYPTION_KEY", "") or None
    if key is not None and len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            "BACKUP_ENCRYPTION_KEY", f"must be at least {MIN_KEY_LENGTH} characters (e.g. `openssl rand -base64 32`)"
        )
    part_size = parse_size("BACKUP_PART_SIZE", env.get("BACKUP_PART_SIZE", "") or "8M")
    if part_size < MIN_PART_SIZE:
        raise ConfigError("BACKUP_PART_SIZE", f"must be at least {MIN_PART_SIZE} bytes")
    compression = (env.get("BACKUP_COMPRESSION", "") or "zstd").strip()
    if compression not in ("zstd", "pg"):
        raise ConfigError("BACKUP_COMPRESSION", f"expected zstd or pg, got {compression!r}")
    style = (env.get("S3_ADDRESSING_STYLE", "") or "path").strip()
    if style not in ("path", "virtual", "auto"):
        raise ConfigError("S3_ADDRESSING_STYLE", f"expected path, virtual or auto, got {style!r}")
    work_dir = env.get("BACKUP_WORK_DIR", "").strip()
    return BackupSettings(
        database_url=database_url,
        s3_endpoint_url=env.get("S3_ENDPOINT_URL", "").strip() or None,
        s3_bucket=_required(env, "S3_BUCKET"),
        s3_region=env.get("S3_REGION", "").strip() or "us-east-1",
        s3_access_key_id=_required(env, "S3_ACCESS_KEY_ID"),
        s3_secret_access_key=_required(env, "S3_SECRET_ACCESS_KEY"),
        prefix=normalise_prefix(env.get("BACKUP_PREFIX", "backups/") or "backups/"),
        encryption_key=key,
        retention_days=_int(env, "BACKUP_RETENTION_DAYS", 28, 1),
        min_keep=_int(env, "BACKUP_MIN_KEEP", 4, 1),
        part_size=part_size,
        compression=compression,
        work_dir=Path(work_dir) if work_dir else None,
        s3_addressing_style=style,
    )

"""Backup settings: defaults, one named variable per error, secrets kept out of repr."""

from __future__ import annotations

import pytest

from deploy.ops.backup.settings import load_backup_settings, parse_size
from server.config import ConfigError

BASE = {
    "ENV_FILE": "",
    "DATABASE_URL": "postgres://app:pw@127.0.0.1:5432/clicknback",
    "S3_BUCKET": "bk",
    "S3_ACCESS_KEY_ID": "id",
    "S3_SECRET_ACCESS_KEY": "topsecret",
}


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./.env here
    settings = load_backup_settings(BASE)
    assert (settings.prefix, settings.retention_days, settings.min_keep, settings.compression) == (
        "backups/",
        28,
        4,
        "zstd",
    )
    assert settings.part_size == 8 * 1024 * 1024 and settings.encryption_key is None
    assert settings.s3_endpoint_url is None and settings.s3_region == "us-east-1"
    assert "topsecret" not in repr(settings) and "pw@" not in repr(settings)


@pytest.mark.parametrize("missing", ["DATABASE_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"])
def test_missing_required_variable_is_named(missing, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError) as caught:
        load_backup_settings(env)
    assert caught.value.variable == missing


@pytest.mark.parametrize(
    "name, value",
    [
        ("BACKUP_ENCRYPTION_KEY", "short"),
        ("BACKUP_RETENTION_DAYS", "x"),
        ("BACKUP_MIN_KEEP", "0"),
        ("BACKUP_PART_SIZE", "1K"),
        ("BACKUP_COMPRESSION", "gzip"),
        ("S3_ADDRESSING_STYLE", "odd"),
    ],
)
def test_invalid_values_are_named_without_echoing_secrets(name, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_backup_settings({**BASE, name: value})
    assert caught.value.variable == name
    if name == "BACKUP_ENCRYPTION_KEY":
        assert value not in str(caught.value)


def test_env_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env_file = tmp_path / "ops.env"
    env_file.write_text("S3_BUCKET=from-file\nBACKUP_PREFIX=nightly\nBACKUP_MIN_KEEP=2\n")
    env = {**BASE, "ENV_FILE": str(env_file)}
    env.pop("S3_BUCKET")
    settings = load_backup_settings(env)
    assert (settings.s3_bucket, settings.prefix, settings.min_keep) == ("from-file", "nightly/", 2)
    assert load_backup_settings({**env, "S3_BUCKET": "from-env"}).s3_bucket == "from-env"


@pytest.mark.parametrize("raw, size", [("8M", 8 * 2**20), ("512K", 512 * 1024), ("1GiB", 2**30), ("65536", 65536)])
def test_parse_size(raw, size):
    assert parse_size("X", raw) == size

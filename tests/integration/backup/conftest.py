"""Backup tests: the real ops CLI as a subprocess, the session's PostgreSQL, moto over HTTP.

Every run of the CLI is checked for leaked secrets: the database password, the S3 secret key and
the encryption key must never appear in its output, whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools.local_postgres import LocalPostgres
from devtools.local_s3 import LocalS3
from devtools.sample_data import sample_data_sql
from tests.support.database import TestDatabases

from .backup_helpers import scratch_databases, table_digests  # noqa: F401 - re-exported for the tests

ROOT = Path(__file__).resolve().parents[3]
DB_PASSWORD = "db-pass-N0t-In-Logs"
ENCRYPTION_KEY = "enc-key-0123456789-never-printed-abcdef"
RELEASE = {"version": "v9.9.9-test", "commit": "c" * 40, "deployed_at": "2026-11-27T00:00:00+00:00"}
SMALL_PART = "64K"


@pytest.fixture(scope="session")
def local_s3(tmp_path_factory) -> Iterator[LocalS3]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    # Small parts keep moto's in-memory objects tiny while still exercising multipart uploads.
    with LocalS3(log_file=log, env={"S3_UPLOAD_PART_MIN_SIZE": str(64 * 1024)}) as s3:
        yield s3


@dataclass
class Ops:
    """Runs `python -m deploy.ops.cli` from a release-like directory, the way cron and invoke do."""

    cluster: LocalPostgres
    env: dict[str, str]
    cwd: Path
    secrets: list[str]
    created: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 180, **overrides: str) -> subprocess.CompletedProcess:
        env = {**self.env, **overrides}
        result = subprocess.run(
            [sys.executable, "-m", "deploy.ops.cli", *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        for secret in self.secrets:
            assert secret not in result.stdout + result.stderr, f"secret leaked by {args}"
        return result

    def ok(self, *args: str, **overrides: str) -> subprocess.CompletedProcess:
        result = self.run(*args, **overrides)
        assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        return result

    def listing(self, **overrides: str) -> dict:
        return json.loads(self.ok("backups", "--json", **overrides).stdout)

    def url(self, database: str) -> str:
        return f"postgres://postgres:{DB_PASSWORD}@{self.cluster.host}:{self.cluster.port}/{database}"

    def remember(self, database: str) -> str:
        self.created.append(database)
        return database


def base_env(s3: LocalS3, bucket: str, database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("S3_", "BACKUP_", "PG"))}
    env.update(s3.settings(bucket))
    env.update(
        {
            "DATABASE_URL": database_url,
            "PYTHONPATH": str(ROOT),
            "BACKUP_PART_SIZE": SMALL_PART,
            "BACKUP_MIN_KEEP": "2",
            "ENV_FILE": "",
        }
    )
    return env


@pytest.fixture
def bucket(local_s3: LocalS3) -> Iterator[str]:
    name = f"bk-{uuid.uuid4().hex[:12]}"
    local_s3.create_bucket(name)
    yield name
    client = local_s3.client()  # free moto's memory
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def source_db(databases: TestDatabases) -> Iterator[str]:
    """A migrated database holding a little of everything (the real schema, consistent wallets)."""
    name = databases.create("bksrc")
    databases.cluster.psql(sample_data_sql(users=60, purchases=400, audit_rows=200), name)
    yield name
    databases.drop(name)


@pytest.fixture
def ops(databases: TestDatabases, local_s3: LocalS3, bucket: str, source_db: str, tmp_path: Path) -> Iterator[Ops]:
    release_dir = tmp_path / "release"
    release_dir.mkdir()
    (release_dir / "RELEASE.json").write_text(json.dumps(RELEASE))
    runner = Ops(databases.cluster, {}, release_dir, secrets=[DB_PASSWORD, ENCRYPTION_KEY, "local-secret-key"])
    runner.env = base_env(local_s3, bucket, runner.url(source_db))
    yield runner
    for database in runner.created:
        databases.drop(database)

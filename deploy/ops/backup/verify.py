"""Verify a backup: download, decrypt, restore into a scratch database, and check the data there."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from deploy.ops.backup import db as backup_db
from deploy.ops.backup.commands import (
    database_name,
    with_database,
)
from deploy.ops.backup.model import (
    Manifest,
    utc_iso,
    verification_key,
)
from deploy.ops.backup.operations import BackupError, find_backup, now_utc, read_release
from deploy.ops.backup.restore import create_database, fetch_verified, load_into
from deploy.ops.backup.settings import BackupSettings
from deploy.ops.backup.store import S3Store


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

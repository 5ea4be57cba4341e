"""`clicknback-ops backup | backups | prune-backups | restore | verify-backup`.

Exit statuses: 0 done; 1 the operation failed (the message says why, and that nothing usable
was lost or half-written); 2 bad configuration or a refused request; 3 another backup of the
same database is running (a PostgreSQL advisory lock: one backup at a time, whichever host).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy.ops.backup.settings import BackupSettings
    from deploy.ops.backup.store import S3Store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="dump the database to the S3 bucket (manifest written last)",
        description="pg_dump (custom format) | zstd, optionally encrypted, streamed to the bucket in parts "
        "with its sha256; the manifest is written only when every stage succeeded.",
    )
    parser.add_argument(
        "--reason",
        choices=["manual", "scheduled", "safety"],
        default="manual",
        help="recorded in the manifest (cron passes scheduled)",
    )
    parser.set_defaults(handler=_command(_backup))

    parser = subparsers.add_parser("backups", help="list complete backups (id, time, size, release, verified)")
    parser.add_argument("--json", action="store_true", help="one JSON object with complete and incomplete backups")
    parser.set_defaults(handler=_command(_list))

    parser = subparsers.add_parser(
        "prune-backups",
        help="apply retention (BACKUP_RETENTION_DAYS, BACKUP_MIN_KEEP)",
        description="Delete backups older than the retention window, never the newest one and never below "
        "the minimum count; remove incomplete leftovers older than a day.",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    parser.set_defaults(handler=_command(_prune))

    parser = subparsers.add_parser(
        "restore",
        help="restore a backup into a database (checksum verified first)",
        description="Download the backup, verify its sha256 before anything is written, then pg_restore it "
        "in one transaction into TARGET (created when missing). Restoring over the live database "
        "(DATABASE_URL's) needs --confirm-live and first takes a safety backup; stop the app around it. "
        "A missing live database is created again (through the maintenance database `postgres`).",
    )
    parser.add_argument("--backup", required=True, metavar="ID", help="backup id (see `backups`)")
    parser.add_argument(
        "--target", metavar="DB", help="database to restore into (default with --confirm-live: the live database)"
    )
    parser.add_argument(
        "--confirm-live", action="store_true", help="allow TARGET to be the live database: it is replaced by the backup"
    )
    parser.add_argument(
        "--no-safety-backup",
        action="store_true",
        help="with --confirm-live only, for a live database that is lost or too damaged to "
        "dump: replace it WITHOUT taking a safety backup first",
    )
    parser.set_defaults(handler=_command(_restore))

    parser = subparsers.add_parser(
        "verify-backup",
        help="restore drill: restore into a scratch database and check it",
        description="Restore the newest complete backup (or --backup ID) into a scratch database, check the "
        "checksum, row counts, migration head, foreign keys and wallets, drop the scratch database and record "
        "the result next to the backup. Exits 1 when any check fails.",
    )
    parser.add_argument("--backup", metavar="ID", help="backup id (default: the newest complete backup)")
    parser.set_defaults(handler=_command(_verify))


Body = Callable[[argparse.Namespace, "BackupSettings", "S3Store"], int]


def _command(body: Body) -> Callable[[argparse.Namespace], int]:
    """Load settings, open the store, run; every known failure becomes one line and an exit status."""

    def handler(args: argparse.Namespace) -> int:
        # Imported here: boto3, asyncpg and cryptography would slow every other ops command's start.
        from deploy.ops.backup import operations
        from deploy.ops.backup.settings import load_backup_settings
        from deploy.ops.backup.store import StoreError
        from server.config import ConfigError

        def fail(text: str, status: int = 1) -> int:
            from deploy.ops.cli import redact, secret_values

            print(redact(text, secret_values()), file=sys.stderr)
            return status

        try:
            settings = load_backup_settings()
        except ConfigError as error:
            return fail(str(error), 2)
        try:
            return body(args, settings, operations.make_store(settings))
        except operations.BackupError as error:
            return fail(f"{args.command}: {error}", error.exit_status)
        except (StoreError, FileNotFoundError) as error:
            return fail(f"{args.command}: {error}")
        except Exception as error:  # noqa: BLE001 - PostgreSQL unreachable, disk full, asyncpg errors et al.: one line
            return fail(f"{args.command}: {type(error).__name__}: {error}")

    return handler


def _backup(args: argparse.Namespace, settings: BackupSettings, store: S3Store) -> int:
    from deploy.ops.backup import operations

    operations.run_backup(settings, store, reason=args.reason, out=sys.stdout)
    return 0


def _list(args: argparse.Namespace, settings: BackupSettings, store: S3Store) -> int:
    from deploy.ops.backup import operations

    operations.list_backups(settings, store, sys.stdout, as_json=args.json)
    return 0


def _prune(args: argparse.Namespace, settings: BackupSettings, store: S3Store) -> int:
    from deploy.ops.backup import operations

    operations.prune_backups(settings, store, sys.stdout, dry_run=args.dry_run)
    return 0


def _restore(args: argparse.Namespace, settings: BackupSettings, store: S3Store) -> int:
    from deploy.ops.backup import operations

    if not args.target and not args.confirm_live:
        raise operations.UsageError("give --target DB (a new database), or --confirm-live to replace the live one")
    if args.no_safety_backup and not args.confirm_live:
        raise operations.UsageError("--no-safety-backup only applies to replacing the live database (--confirm-live)")
    from deploy.ops.backup.commands import database_name
    from deploy.ops.backup.restore import restore

    target = args.target or database_name(settings.database_url)
    restore(
        settings, store, args.backup, target, args.confirm_live, sys.stdout, safety_backup=not args.no_safety_backup
    )
    return 0


def _verify(args: argparse.Namespace, settings: BackupSettings, store: S3Store) -> int:
    from deploy.ops.backup.verify import verify_backup

    return 0 if verify_backup(settings, store, args.backup, sys.stdout) else 1

"""`clicknback-ops`: the VPS-side operations CLI.

Each subcommand lives in its own module under deploy/ops/, which exposes
`register(subparsers)`; cron and the laptop's invoke tasks both call this CLI, so every
operation is implemented exactly once, next to the data it works on.

On a host there is no `clicknback-ops` executable (release venvs are built from requirements.lock
only): run it from a release directory as
`ENV_FILE=/srv/clicknback/shared/.env ./.venv/bin/python -m deploy.ops.cli COMMAND`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from server.config import ConfigError

# Modules that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES = [
    "deploy.ops.migrate",
    "deploy.ops.backup",
    "deploy.ops.wallets",
    "deploy.ops.cap_totals",
    "deploy.ops.logs",
    "deploy.ops.stats",
    "deploy.ops.maintenance",
    "deploy.ops.pitr.ops_commands",
]

# Set to 1 to see the traceback of an unexpected error on the terminal (else it goes to the log).
TRACEBACK_VARIABLE = "CLICKNBACK_OPS_TRACEBACK"
ERROR_LOG_NAME = "ops-errors.log"
SECRET_VARIABLES = (
    "DATABASE_URL",
    "S3_SECRET_ACCESS_KEY",
    "S3_ACCESS_KEY_ID",
    "BACKUP_ENCRYPTION_KEY",
    "OAUTH_HASH_KEY",
    "PGPASSWORD",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clicknback-ops",
        description="ClickNBack operations on this host (cron and `invoke` call these). On a host: "
        "cd /srv/clicknback/current && ENV_FILE=/srv/clicknback/shared/.env "
        "./.venv/bin/python -m deploy.ops.cli COMMAND",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def secret_values() -> list[str]:
    """Values that must never reach the terminal: secret variables, and a DATABASE_URL's password
    as written and percent-decoded (libpq and asyncpg messages carry the decoded one)."""
    values = []
    sources: list[Mapping[str, str]] = [os.environ]
    try:
        from server.config import load_environment

        sources.append(load_environment())
    except Exception:  # noqa: BLE001 - redaction must work whatever broke the configuration
        pass
    for env in sources:
        for name in SECRET_VARIABLES:
            value = env.get(name) or ""
            if len(value) >= 4:
                values.append(value)
            if name == "DATABASE_URL" and value:
                try:
                    password = urlsplit(value).password
                except ValueError:
                    password = None
                if password:
                    values += [password, unquote(password)]
    return sorted(set(values), key=len, reverse=True)  # the whole URL before its password


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def operational_cause(error: BaseException) -> str | None:
    """One line naming the cause of a failure the operator can act on, None for a bug."""
    asyncpg = sys.modules.get("asyncpg")  # only loaded by the commands that use the database
    if isinstance(error, OSError):  # refused, unreachable, timed out, DNS, permissions, disk
        connecting = isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)) or str(error).startswith(
            "Multiple exceptions"
        )  # asyncpg: every address of the host failed
        return f"{'connection failed' if connecting else 'OS error'}: {type(error).__name__}: {error}"
    if asyncpg is not None and isinstance(error, asyncpg.PostgresError):
        return f"database error: {type(error).__name__}: {error}"
    if asyncpg is not None and isinstance(error, asyncpg.InterfaceError):
        return f"database connection error: {type(error).__name__}: {error}"
    tortoise = sys.modules.get("tortoise.exceptions")
    if tortoise is not None and isinstance(error, (tortoise.DBConnectionError, tortoise.OperationalError)):
        return f"database error: {type(error).__name__}: {error}"
    return None


def _error_log() -> Path | None:
    """shared/logs/ops-errors.log beside ENV_FILE, when that folder exists."""
    env_file = os.environ.get("ENV_FILE")
    logs = Path(env_file).parent / "logs" if env_file else None
    return logs / ERROR_LOG_NAME if logs is not None and logs.is_dir() else None


def report_failure(command: str, error: BaseException) -> int:
    """One line on stderr, the secrets redacted; a bug's traceback goes to the error log."""
    secrets = secret_values()
    cause = operational_cause(error)
    if cause is not None:
        line = " ".join(cause.split())  # asyncpg's "Multiple exceptions" spans lines
        print(redact(f"clicknback-ops {command}: {line}", secrets)[:500], file=sys.stderr)
        return 1
    details = redact("".join(traceback.format_exception(error)), secrets)
    if os.environ.get(TRACEBACK_VARIABLE) == "1":
        print(details, file=sys.stderr, end="")
        where = "traceback above"
    else:
        log = _error_log()
        where = f"{TRACEBACK_VARIABLE}=1 shows the traceback"
        if log is not None:
            try:
                with open(log, "a") as handle:
                    handle.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {command}\n{details}\n")
                where = f"traceback in {log}"
            except OSError:
                pass
    print(
        redact(f"clicknback-ops {command}: unexpected error {type(error).__name__} (a bug; {where})", secrets),
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ConfigError as error:
        print(redact(str(error), secret_values()), file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the operator gets one line, never a traceback
        return report_failure(args.command, error)


if __name__ == "__main__":
    sys.exit(main())

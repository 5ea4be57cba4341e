"""PostgreSQL access for backup and restore: a synchronous face over one asyncpg connection.

The backup keeps one REPEATABLE READ transaction open for the whole dump: pg_dump runs on its
exported snapshot, and the manifest's row counts and migration head come from that same snapshot,
so a verify-backup on a busy database compares like with like.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from deploy.ops.backup.commands import (
    FOREIGN_KEYS_SQL,
    LIST_TABLES_SQL,
    NOT_VALIDATED_CONSTRAINTS_SQL,
    count_rows_sql,
    orphan_count_sql,
    quote_ident,
    with_database,
)
from server.db import parse_database_url
from server.db_migrations import db_head_on

# pg_try_advisory_lock key of backups: the first 8 bytes of sha256("clicknback-backup"), signed.
BACKUP_LOCK_KEY = 6321159599233877432


class Database:
    """One connection, used from synchronous code (the loop only runs while a call is in flight)."""

    def __init__(self, database_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._connection: asyncpg.Connection = self._run(
                asyncpg.connect(
                    **parse_database_url(database_url),
                    timeout=15,
                    server_settings={"application_name": "clicknback-backup"},
                )
            )
        except BaseException:
            self._loop.close()
            raise

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def execute(self, sql: str, *args: Any) -> str:
        return self._run(self._connection.execute(sql, *args))

    def fetchval(self, sql: str, *args: Any) -> Any:
        return self._run(self._connection.fetchval(sql, *args))

    def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return self._run(self._connection.fetch(sql, *args))

    def close(self) -> None:
        try:
            self._run(self._connection.close(timeout=10))
        except Exception:  # noqa: BLE001 - closing a broken connection must not hide the real error
            self._connection.terminate()
        finally:
            self._loop.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts recorded in the manifest and checked by verify-backup --------------------------
    def server_version(self) -> str:
        return str(self.fetchval("SHOW server_version"))

    def migration_head(self) -> str | None:
        return self._run(db_head_on(self._connection))

    def row_counts(self) -> dict[str, int]:
        tables = [row[0] for row in self.fetch(LIST_TABLES_SQL)]
        return {table: int(self.fetchval(count_rows_sql(table))) for table in tables}

    def try_backup_lock(self) -> bool:
        """One backup per database at a time, whichever host starts it (held until disconnect)."""
        return bool(self.fetchval("SELECT pg_try_advisory_lock($1)", BACKUP_LOCK_KEY))

    def begin_snapshot(self) -> str:
        """Start the transaction whose snapshot pg_dump will share; returns the snapshot id."""
        # The transaction idles while pg_dump works: a server-side idle/statement timeout must not end it.
        self.execute("SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0")
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return str(self.fetchval("SELECT pg_export_snapshot()"))

    def end_snapshot(self) -> None:
        self.execute("COMMIT")

    def foreign_key_problems(self) -> list[str]:
        """Constraints left NOT VALID, and foreign keys pointing at missing rows."""
        problems = [f"constraint {name} is not validated" for (name,) in self.fetch(NOT_VALIDATED_CONSTRAINTS_SQL)]
        for fk in self.fetch(FOREIGN_KEYS_SQL):
            orphans = self.fetchval(
                orphan_count_sql(
                    fk["child_table"], list(fk["child_columns"]), fk["parent_table"], list(fk["parent_columns"])
                )
            )
            if orphans:
                problems.append(
                    f"{fk['child_table']}.{fk['conname']}: {orphans} row(s) reference missing {fk['parent_table']} rows"
                )
        return problems

    def foreign_key_count(self) -> int:
        return len(self.fetch(FOREIGN_KEYS_SQL))


# -- databases on the server -----------------------------------------------------------------
# CREATE/DROP DATABASE run over a connection to the live database (DATABASE_URL): it normally
# exists and the app's role can reach it, unlike a "postgres" maintenance database on some managed
# services. Only when the live database itself cannot be opened (dropped, or too damaged to
# connect: the Sev-1 restore) do they fall back to the maintenance database, same credentials.
# A target or scratch database is never the one that connection uses while dropping.

MAINTENANCE_DATABASE = "postgres"


class CreateDatabaseRefused(RuntimeError):
    """The role may not CREATE DATABASE; the message names the cause and the fix."""


def create_database_refused_message(role: str, name: str) -> str:
    role_sql = quote_ident(role)
    return (
        f"cannot create database {name}: role {role} lacks the CREATEDB privilege; as the PostgreSQL "
        f"superuser run `ALTER ROLE {role_sql} CREATEDB;` (e.g. sudo -u postgres psql -c "
        f"'ALTER ROLE {role_sql} CREATEDB'), or re-run `invoke provision --system`"
    )


def server_connection(database_url: str) -> Database:
    """A connection for server-wide statements: the live database, else the maintenance one."""
    try:
        return Database(database_url)
    except asyncpg.PostgresError as live_error:
        try:
            return Database(with_database(database_url, MAINTENANCE_DATABASE))
        except (asyncpg.PostgresError, OSError):
            raise live_error from None


def database_exists(database_url: str, name: str) -> bool:
    with server_connection(database_url) as db:
        return bool(db.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))


def database_has_tables(database_url: str, name: str) -> bool:
    with Database(with_database(database_url, name)) as db:
        return bool(
            db.fetchval(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%'"
            )
        )


def create_database(database_url: str, name: str) -> None:
    with server_connection(database_url) as db:
        try:
            db.execute(f"CREATE DATABASE {quote_ident(name)}")
        except asyncpg.InsufficientPrivilegeError:
            role = str(db.fetchval("SELECT current_user"))
            raise CreateDatabaseRefused(create_database_refused_message(role, name)) from None


def drop_database(database_url: str, name: str) -> None:
    with server_connection(database_url) as db:
        db.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")

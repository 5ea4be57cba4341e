"""Pure builders: the processes a backup or restore runs, their environment, and check SQL.

The password travels in PGPASSWORD (the child's environment), never in argv, so `ps` and error
messages cannot show it. Each builder is unit-tested with golden values.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from server.config import database_address

# Custom format, no compression inside pg_dump: zstd beside it, on the other core, is faster and
# smaller (docs/adr/0006).
ZSTD_LEVEL = 1


# A plain identifier: it is quoted in SQL anyway, but a plain name cannot surprise anyone.
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def database_name_problem(name: str) -> str | None:
    """Why NAME cannot be used as a database name, or None when it can."""
    if DATABASE_NAME.match(name):
        return None
    return f"invalid database name {name!r}: letters, digits and _ only, at most 63 characters"


def named_database_url(database_url: str, name: str) -> str:
    """DATABASE_URL's server and credentials with database NAME (so no password is typed)."""
    problem = database_name_problem(name)
    if problem:
        raise ValueError(problem)
    return with_database(database_url, name)


def database_name(database_url: str) -> str:
    return unquote(urlparse(database_url).path.lstrip("/"))


def with_database(database_url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parsed = urlparse(database_url)
    return parsed._replace(path="/" + database).geturl()


def libpq_environment(database_url: str, database: str | None = None) -> dict[str, str]:
    """PG* variables for pg_dump/pg_restore/psql, so that no secret appears on a command line."""
    parsed = urlparse(database_url)
    host, port = database_address(database_url)
    env = {
        "PGHOST": host,
        "PGPORT": str(port),
        "PGUSER": unquote(parsed.username or "postgres"),
        "PGDATABASE": database if database is not None else unquote(parsed.path.lstrip("/")),
    }
    if parsed.password:
        env["PGPASSWORD"] = unquote(parsed.password)
    query = parse_qs(parsed.query)
    for param, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
        if query.get(param):
            env[variable] = query[param][0]
    return env


def dump_commands(pg_dump: str, compression: str, snapshot: str | None) -> list[list[str]]:
    """The pipeline whose last stage's stdout is the stored data (before optional encryption)."""
    dump = [pg_dump, "--format=custom", "--no-password"]
    if snapshot:
        dump.append(f"--snapshot={snapshot}")
    if compression == "zstd":
        return [dump + ["--compress=0"], ["zstd", f"-{ZSTD_LEVEL}", "--quiet", "--stdout", "-"]]
    if compression == "pg":
        return [dump]
    raise ValueError(f"unknown compression {compression!r}")


def restore_commands(pg_restore: str, compression: str, target_database: str, replace: bool) -> list[list[str]]:
    """The pipeline fed with the decrypted stored data; the last stage writes into the target.

    --single-transaction: a failed restore leaves the target as it was (all or nothing).
    --no-owner: the target belongs to whoever restores it. Privileges are restored on purpose:
    audit_logs' REVOKEs are part of the schema's security.
    """
    restore = [
        pg_restore,
        "--no-password",
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
        f"--dbname={target_database}",
    ]
    if replace:
        restore += ["--clean", "--if-exists"]
    if compression == "zstd":
        return [["zstd", "--decompress", "--quiet", "--stdout", "-"], restore]
    if compression == "pg":
        return [restore]
    raise ValueError(f"unknown compression {compression!r}")


def find_pg_client(name: str, environ: dict[str, str] | None = None) -> str:
    """pg_dump/pg_restore of the newest installed major version (they must be >= the server's)."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    candidates: list[str] = []
    if env.get("PG_BINDIR"):
        candidates.append(str(Path(env["PG_BINDIR"]) / name))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_of, reverse=True)
    candidates += [str(Path(path) / name) for path in versions]
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise FileNotFoundError(f"{name} not found (set PG_BINDIR or install postgresql-client)")


def _major_of(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


# -- SQL -------------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


LIST_TABLES_SQL = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
)

# One row per foreign key: child table, child columns, parent table, parent columns (in order).
FOREIGN_KEYS_SQL = """
SELECT con.conname, child.relname AS child_table, parent.relname AS parent_table,
       array_agg(ca.attname ORDER BY k.ord) AS child_columns,
       array_agg(pa.attname ORDER BY k.ord) AS parent_columns
FROM pg_constraint con
JOIN pg_class child ON child.oid = con.conrelid
JOIN pg_class parent ON parent.oid = con.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(child_att, parent_att, ord)
JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = k.child_att
JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.parent_att
WHERE con.contype = 'f' AND n.nspname = 'public'
GROUP BY con.conname, child.relname, parent.relname
ORDER BY child.relname, con.conname
""".strip()

NOT_VALIDATED_CONSTRAINTS_SQL = (
    "SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint "
    "WHERE NOT convalidated AND connamespace = 'public'::regnamespace ORDER BY 1"
)


def count_rows_sql(table: str) -> str:
    return f"SELECT count(*) FROM {quote_ident(table)}"


def orphan_count_sql(child_table: str, child_columns: list[str], parent_table: str, parent_columns: list[str]) -> str:
    """Rows whose (non-null) foreign key has no parent row: must be 0 in a sound backup."""
    not_null = " AND ".join(f"c.{quote_ident(col)} IS NOT NULL" for col in child_columns)
    match = " AND ".join(
        f"p.{quote_ident(parent)} = c.{quote_ident(child)}" for child, parent in zip(child_columns, parent_columns)
    )
    return (
        f"SELECT count(*) FROM {quote_ident(child_table)} c WHERE {not_null} "
        f"AND NOT EXISTS (SELECT 1 FROM {quote_ident(parent_table)} p WHERE {match})"
    )

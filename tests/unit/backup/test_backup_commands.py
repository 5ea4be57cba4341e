"""Golden command lines and SQL for backup/restore (the password never reaches argv)."""

from __future__ import annotations

from deploy.ops.backup_commands import (
    count_rows_sql,
    database_name,
    dump_commands,
    libpq_environment,
    orphan_count_sql,
    restore_commands,
    with_database,
)

URL = "postgres://app:s%40cret@db.internal:6543/clicknback?sslmode=require"


def test_libpq_environment_carries_the_password_outside_argv():
    assert libpq_environment(URL) == {
        "PGHOST": "db.internal", "PGPORT": "6543", "PGUSER": "app", "PGDATABASE": "clicknback",
        "PGPASSWORD": "s@cret", "PGSSLMODE": "require",
    }
    assert libpq_environment("postgres://postgres@127.0.0.1/x", "other") == {
        "PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres", "PGDATABASE": "other",
    }


def test_libpq_environment_through_the_unix_socket():
    assert libpq_environment("postgres://app:pw@:5433/clicknback?host=/var/run/postgresql") == {
        "PGHOST": "/var/run/postgresql", "PGPORT": "5433", "PGUSER": "app", "PGDATABASE": "clicknback",
        "PGPASSWORD": "pw",
    }


def test_database_name_and_switching():
    assert database_name(URL) == "clicknback"
    assert with_database(URL, "scratch") == "postgres://app:s%40cret@db.internal:6543/scratch?sslmode=require"


def test_dump_pipeline_zstd():
    assert dump_commands("/usr/lib/postgresql/15/bin/pg_dump", "zstd", "00000003-0000001B-1") == [
        ["/usr/lib/postgresql/15/bin/pg_dump", "--format=custom", "--no-password", "--snapshot=00000003-0000001B-1",
         "--compress=0"],
        ["zstd", "-1", "--quiet", "--stdout", "-"],
    ]


def test_dump_pipeline_pg_compression_without_snapshot():
    assert dump_commands("pg_dump", "pg", None) == [["pg_dump", "--format=custom", "--no-password"]]


def test_restore_pipeline_new_database_and_replace():
    assert restore_commands("pg_restore", "zstd", "scratch", replace=False) == [
        ["zstd", "--decompress", "--quiet", "--stdout", "-"],
        ["pg_restore", "--no-password", "--exit-on-error", "--single-transaction", "--no-owner", "--dbname=scratch"],
    ]
    assert restore_commands("pg_restore", "pg", "live", replace=True) == [
        ["pg_restore", "--no-password", "--exit-on-error", "--single-transaction", "--no-owner", "--dbname=live",
         "--clean", "--if-exists"],
    ]


def test_check_sql():
    assert count_rows_sql('we"ird') == 'SELECT count(*) FROM "we""ird"'
    assert orphan_count_sql("purchases", ["user_id"], "users", ["id"]) == (
        'SELECT count(*) FROM "purchases" c WHERE c."user_id" IS NOT NULL AND NOT EXISTS '
        '(SELECT 1 FROM "users" p WHERE p."id" = c."user_id")'
    )
    assert orphan_count_sql("t", ["a", "b"], "p", ["x", "y"]) == (
        'SELECT count(*) FROM "t" c WHERE c."a" IS NOT NULL AND c."b" IS NOT NULL AND NOT EXISTS '
        '(SELECT 1 FROM "p" p WHERE p."x" = c."a" AND p."y" = c."b")'
    )


def test_backup_lock_key_is_derived_as_documented():
    import hashlib

    from deploy.ops.backup_db import BACKUP_LOCK_KEY

    assert BACKUP_LOCK_KEY == int.from_bytes(hashlib.sha256(b"clicknback-backup").digest()[:8], "big", signed=True)

"""Golden command lines and SQL for backup/restore (the password never reaches argv)."""

from __future__ import annotations

import pytest

from deploy.ops.backup.commands import (
    count_rows_sql,
    database_name,
    database_name_problem,
    dump_commands,
    libpq_environment,
    named_database_url,
    orphan_count_sql,
    restore_commands,
    with_database,
)

URL = "postgres://app:s%40cret@db.internal:6543/clicknback?sslmode=require"


def test_libpq_environment_carries_the_password_outside_argv():
    assert libpq_environment(URL) == {
        "PGHOST": "db.internal",
        "PGPORT": "6543",
        "PGUSER": "app",
        "PGDATABASE": "clicknback",
        "PGPASSWORD": "s@cret",
        "PGSSLMODE": "require",
    }
    assert libpq_environment("postgres://postgres@127.0.0.1/x", "other") == {
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGUSER": "postgres",
        "PGDATABASE": "other",
    }


def test_libpq_environment_through_the_unix_socket():
    assert libpq_environment("postgres://app:pw@:5433/clicknback?host=/var/run/postgresql") == {
        "PGHOST": "/var/run/postgresql",
        "PGPORT": "5433",
        "PGUSER": "app",
        "PGDATABASE": "clicknback",
        "PGPASSWORD": "pw",
    }


def test_database_name_and_switching():
    assert database_name(URL) == "clicknback"
    assert with_database(URL, "scratch") == "postgres://app:s%40cret@db.internal:6543/scratch?sslmode=require"


def test_dump_pipeline_zstd():
    assert dump_commands("/usr/lib/postgresql/15/bin/pg_dump", "zstd", "00000003-0000001B-1") == [
        [
            "/usr/lib/postgresql/15/bin/pg_dump",
            "--format=custom",
            "--no-password",
            "--snapshot=00000003-0000001B-1",
            "--compress=0",
        ],
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
        [
            "pg_restore",
            "--no-password",
            "--exit-on-error",
            "--single-transaction",
            "--no-owner",
            "--dbname=live",
            "--clean",
            "--if-exists",
        ],
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

    from deploy.ops.backup.db import BACKUP_LOCK_KEY

    assert BACKUP_LOCK_KEY == int.from_bytes(hashlib.sha256(b"clicknback-backup").digest()[:8], "big", signed=True)


def test_named_database_url_keeps_server_and_credentials_and_only_swaps_the_name():
    live = "postgres://app:s%40cret@db.internal:5433/clicknback?sslmode=require"
    assert named_database_url(live, "clicknback_check") == (
        "postgres://app:s%40cret@db.internal:5433/clicknback_check?sslmode=require"
    )
    for bad in ("x;drop", "", "1abc", "a" * 64, "name/with/slash", "clicknback?sslmode=disable"):
        with pytest.raises(ValueError, match="invalid database name"):
            named_database_url(live, bad)
    assert database_name_problem("clicknback_verify_1a2b") is None


@pytest.mark.parametrize("command", ["check-wallets", "rebuild-cap-totals"])
def test_database_name_option_replaces_the_url_option(command, monkeypatch, capsys):
    from deploy.ops.cli import build_parser
    from deploy.ops.wallets import chosen_database_url

    monkeypatch.setenv("ENV_FILE", "")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@127.0.0.1:5432/clicknback")
    parser = build_parser()
    args = parser.parse_args([command, "--database", "clicknback_check"])
    assert chosen_database_url(args, command) == "postgres://app:pw@127.0.0.1:5432/clicknback_check"
    assert chosen_database_url(parser.parse_args([command]), command).endswith("/clicknback")
    url = "postgres://other@127.0.0.1:5432/elsewhere"
    assert chosen_database_url(parser.parse_args([command, "--database-url", url]), command) == url
    with pytest.raises(SystemExit) as refused:
        chosen_database_url(parser.parse_args([command, "--database", "bad;name"]), command)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{command}: invalid database name 'bad;name'") and "pw" not in err
    with pytest.raises(SystemExit):  # both at once is ambiguous: argparse refuses it
        parser.parse_args([command, "--database", "a", "--database-url", url])

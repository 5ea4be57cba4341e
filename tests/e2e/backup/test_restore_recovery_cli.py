"""Restore in the bad cases, through the real ops CLI on a real PostgreSQL cluster and moto over HTTP:
the live database dropped or undumpable (Sev-1), a role without CREATEDB, and --database NAME.

Reuses the backup integration fixtures (the session's cluster, a migrated sample database, moto);
every CLI run is checked there for leaked secrets.
"""

from __future__ import annotations

import pytest

from tests.integration.backup.conftest import (  # noqa: F401 - pytest fixtures, used by name
    Ops,
    bucket,
    local_s3,
    ops,
    source_db,
    table_digests,
)

pytestmark = pytest.mark.e2e


def backup_id_from(stdout: str) -> str:
    return stdout.split()[1].rstrip(":")


def database_exists(ops: Ops, name: str) -> bool:
    return ops.cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "1"


def test_a_dropped_live_database_is_recreated_only_when_the_operator_skips_the_safety_backup(ops: Ops, source_db: str):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    before = table_digests(ops.cluster, source_db)
    ops.cluster.drop_database(source_db)  # Sev-1: the live database is gone

    refused = ops.run("restore", "--backup", backup_id, "--confirm-live")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"restore: the live database {source_db} does not exist on the server, so no safety backup can be taken; "
        "if it is really lost, run the restore again with --no-safety-backup (docs/disaster-recovery.md)"
    )
    assert not database_exists(ops, source_db)

    restored = ops.ok("restore", "--backup", backup_id, "--confirm-live", "--no-safety-backup")
    assert "WARNING: --no-safety-backup" in restored.stdout
    assert f"the live database {source_db} does not exist: creating it" in restored.stdout
    assert table_digests(ops.cluster, source_db) == before
    assert ops.ok("check-wallets").returncode == 0  # the app's own DATABASE_URL works again
    assert [m["reason"] for m in ops.listing()["complete"]] == ["manual"]  # no safety backup was stored


def test_a_failing_safety_backup_aborts_unless_the_operator_skips_it(ops: Ops, source_db: str):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    ops.cluster.psql("INSERT INTO login_attempts (email) VALUES ('after-backup@example.test')", source_db)
    # Real catalog damage: a table in a schema that does not exist makes pg_dump fail.
    ops.cluster.psql("UPDATE pg_catalog.pg_class SET relnamespace = 999999 WHERE relname = 'audit_logs'", source_db)
    damaged = table_digests(ops.cluster, source_db)

    aborted = ops.run("restore", "--backup", backup_id, "--confirm-live")
    assert aborted.returncode == 1
    assert aborted.stderr.startswith("restore: the safety backup failed, so nothing was restored (")
    assert "run the restore again with --no-safety-backup" in aborted.stderr
    assert len(aborted.stderr.strip().splitlines()) == 1 and "Traceback" not in aborted.stderr
    assert table_digests(ops.cluster, source_db) == damaged  # untouched

    # The runbook's way out for a database too damaged to dump: drop it, restore without a safety backup.
    ops.cluster.drop_database(source_db)
    ops.ok("restore", "--backup", backup_id, "--confirm-live", "--no-safety-backup")
    assert (
        ops.cluster.psql("SELECT count(*) FROM login_attempts WHERE email = 'after-backup@example.test'", source_db)
        == "0"
    )
    assert ops.ok("check-wallets").returncode == 0


def test_no_safety_backup_without_confirm_live_is_refused(ops: Ops):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    refused = ops.run("restore", "--backup", backup_id, "--target", ops.remember("bk_never"), "--no-safety-backup")
    assert refused.returncode == 2
    assert "--no-safety-backup only applies to replacing the live database" in refused.stderr
    assert not database_exists(ops, "bk_never")


def test_confirm_live_with_another_target_is_refused(ops: Ops, source_db: str):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    refused = ops.run("restore", "--backup", backup_id, "--target", "bk_other", "--confirm-live")
    assert refused.returncode == 2
    assert f"--confirm-live replaces the live database {source_db}, but --target names bk_other" in refused.stderr
    assert not database_exists(ops, "bk_other")


def test_a_role_without_createdb_gets_one_line_naming_the_fix(ops: Ops, source_db: str):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    ops.cluster.psql("CREATE ROLE bk_app LOGIN NOSUPERUSER NOCREATEDB")  # as `provision --system` used to
    try:
        url = f"postgres://bk_app:unused@{ops.cluster.host}:{ops.cluster.port}/{source_db}"
        refused = ops.run("restore", "--backup", backup_id, "--target", "bk_denied", DATABASE_URL=url)
        assert refused.returncode == 1
        assert refused.stderr == (
            "restore: cannot create database bk_denied: role bk_app lacks the CREATEDB privilege; as the "
            'PostgreSQL superuser run `ALTER ROLE "bk_app" CREATEDB;` (e.g. sudo -u postgres psql -c '
            "'ALTER ROLE \"bk_app\" CREATEDB'), or re-run `invoke provision --system`\n"
        )
        verify = ops.run("verify-backup", DATABASE_URL=url)
        assert verify.returncode == 1 and "lacks the CREATEDB privilege" in verify.stderr
        ops.cluster.psql('ALTER ROLE "bk_app" CREATEDB')  # the fix the message names works
        ops.remember("bk_allowed")
        ops.ok("restore", "--backup", backup_id, "--target", "bk_allowed", DATABASE_URL=url)
        ops.cluster.drop_database("bk_allowed")
    finally:
        ops.cluster.psql("DROP ROLE IF EXISTS bk_app")


def test_database_name_option_reaches_the_named_database_with_the_live_credentials(ops: Ops, source_db: str):
    backup_id = backup_id_from(ops.ok("backup").stdout)
    target = ops.remember("bk_check")
    ops.ok("restore", "--backup", backup_id, "--target", target)
    ops.cluster.psql(
        "UPDATE wallets SET available_balance = available_balance + 1.00 "
        "WHERE user_id = (SELECT min(user_id::text)::uuid FROM wallets)",
        target,
    )

    copy = ops.run("check-wallets", "--database", target)
    assert copy.returncode == 1 and "MISMATCH" in copy.stdout
    assert ops.ok("check-wallets").returncode == 0  # the live database is not the one checked above
    dry = ops.ok("rebuild-cap-totals", "--database", target, "--dry-run")
    assert "0 mismatch(es) before" in dry.stdout

    missing = ops.run("check-wallets", "--database", "bk_no_such_db")
    assert missing.returncode == 2
    assert missing.stderr == "check-wallets: database bk_no_such_db does not exist on that server\n"
    bad = ops.run("rebuild-cap-totals", "--database", "x;drop")
    assert bad.returncode == 2 and bad.stderr.startswith("rebuild-cap-totals: invalid database name 'x;drop'")

"""The schema is made only by Aerich migrations: up to head, down to the first, up again."""

import asyncpg

from server import db_migrations
from server.db import parse_database_url


async def _objects(url: str) -> dict:
    conn = await asyncpg.connect(**parse_database_url(url))
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        indexes = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        checks = {r["conname"] for r in await conn.fetch("SELECT conname FROM pg_constraint WHERE contype = 'c'")}
        triggers = {r["tgname"] for r in await conn.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        return {"tables": tables, "indexes": indexes, "checks": checks, "triggers": triggers}
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade_on_a_real_database(databases):
    name = databases.create_empty("mig")
    url = databases.url(name)
    try:
        applied = await db_migrations.upgrade(url)
        assert applied == db_migrations.migration_files()
        head = await _objects(url)
        assert {"users", "merchants", "offers", "purchases", "cashback_transactions", "wallets", "payouts",
                "audit_logs", "feature_flags", "refresh_tokens", "login_attempts", "aerich"} <= head["tables"]
        assert {"uq_merchants_name_ci", "uq_offers_one_active_per_merchant", "uq_payouts_one_requested",
                "uq_feature_flags_key_scope", "ix_purchases_cap", "ix_purchases_due"} <= head["indexes"]
        assert {"ck_wallets_available", "ck_payouts_processed", "ck_audit_actor", "ck_users_email_lower"} <= head["checks"]
        assert "trg_audit_logs_append_only" in head["triggers"]

        first = db_migrations.migration_number(db_migrations.migration_files()[0])
        undone = await db_migrations.downgrade_to(url, first)
        assert undone == db_migrations.migration_files()[1:][::-1]
        status = await db_migrations.status(url)
        assert status.db_head == db_migrations.migration_files()[0]
        assert "trg_audit_logs_append_only" not in (await _objects(url))["triggers"]

        assert await db_migrations.upgrade(url) == db_migrations.migration_files()[1:]
        assert await _objects(url) == head
        status = await db_migrations.status(url)
        assert status.pending == [] and status.db_head == db_migrations.code_head()
    finally:
        databases.drop(name)


async def test_ops_cli_reports_status_as_json(database_url):
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "deploy.ops.cli", "migrate", "--status"], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "ENV_FILE": "/dev/null"},
                            timeout=60)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["db_head"] == status["code_head"] == db_migrations.code_head()
    assert status["pending"] == []

"""The schema is made only by Aerich migrations: up to head, down to the first, up again."""

import uuid
from decimal import Decimal

import asyncpg

from server import db_migrations
from server.db import parse_database_url


async def _objects(url: str) -> dict:
    conn = await asyncpg.connect(**parse_database_url(url))
    try:
        tables = {
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        indexes = {
            r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        }
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
        assert {
            "users",
            "merchants",
            "offers",
            "purchases",
            "cashback_transactions",
            "wallets",
            "payouts",
            "audit_logs",
            "feature_flags",
            "refresh_tokens",
            "login_attempts",
            "cashback_monthly_totals",
            "aerich",
        } <= head["tables"]
        assert {
            "uq_merchants_name_ci",
            "uq_offers_one_active_per_merchant",
            "uq_payouts_one_requested",
            "uq_feature_flags_key_scope",
            "ix_purchases_cap",
            "ix_purchases_due",
        } <= head["indexes"]
        assert {"ck_wallets_available", "ck_payouts_processed", "ck_audit_actor", "ck_users_email_lower"} <= head[
            "checks"
        ]
        assert {
            "trg_audit_logs_append_only",
            "trg_purchases_monthly_totals_insert",
            "trg_purchases_monthly_totals_update",
            "trg_purchases_monthly_totals_delete",
            "trg_purchases_monthly_totals_truncate",
        } <= head["triggers"]

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


def _file(number: int) -> str:
    return next(f for f in db_migrations.migration_files() if db_migrations.migration_number(f) == number)


async def _upgrade_sql(number: int) -> str:
    """The SQL a migration's upgrade() returns (the migrations do not use the connection)."""
    import importlib.util

    path = db_migrations.MIGRATIONS_DIR / db_migrations.APP / _file(number)
    spec = importlib.util.spec_from_file_location(f"migration_{number}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return await module.upgrade(None)


async def _record(conn, user_id, external_id, merchant_id, amount) -> tuple[str, Decimal]:
    row = await conn.fetchrow(
        "SELECT * FROM record_purchase($1, $2, $3, $4, 'EUR')", user_id, external_id, merchant_id, Decimal(amount)
    )
    return row["outcome"], row["credited"]


async def test_monthly_totals_backfill_downgrade_and_upgrade_again(databases):
    """Migration 4 backfills the totals of purchases written at migration 3; after a downgrade,
    migration 3's record_purchase (its exact body) caps from the purchases again."""
    from tests.integration.purchases.helpers import assert_totals_match_purchases

    name = databases.create_empty("mig4")
    url = databases.url(name)
    try:
        await db_migrations.upgrade(url)
        assert _file(4) in await db_migrations.downgrade_to(url, 3)
        conn = await asyncpg.connect(**parse_database_url(url))
        try:
            assert "cashback_monthly_totals" not in (await _objects(url))["tables"]
            m3_body = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'record_purchase'")
            assert m3_body in await _upgrade_sql(3)
            alice, bob = uuid.uuid4(), uuid.uuid4()
            for user_id in (alice, bob):
                await conn.execute(
                    "INSERT INTO users (id, email, hashed_password) VALUES ($1, $2, 'x')",
                    user_id,
                    f"{user_id}@example.test",
                )
                await conn.execute("INSERT INTO wallets (user_id) VALUES ($1)", user_id)
            shop, other_shop = uuid.uuid4(), uuid.uuid4()
            offers = {}
            for merchant_id in (shop, other_shop):
                await conn.execute(
                    "INSERT INTO merchants (id, name, default_cashback_percentage) VALUES ($1, $2, 5)",
                    merchant_id,
                    f"m-{merchant_id}",
                )
                offers[merchant_id] = await conn.fetchval(
                    "INSERT INTO offers (merchant_id, percentage, start_date, end_date, monthly_cap_per_user) "
                    "VALUES ($1, 5, current_date - 40, current_date + 300, 50) RETURNING id",
                    merchant_id,
                )
            this_month = "date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
            purchases = [  # (user, merchant, status, cashback, created_at)
                (alice, shop, "pending", "10.00", f"{this_month} + interval '1 hour'"),
                (alice, shop, "confirmed", "20.50", f"{this_month}"),
                (alice, shop, "rejected", "7.00", f"{this_month} + interval '2 hours'"),
                (alice, shop, "reversed", "0.00", f"{this_month} + interval '3 hours'"),
                (alice, shop, "confirmed", "30.00", f"{this_month} - interval '1 second'"),
                (alice, shop, "pending", "0.00", f"{this_month} + interval '4 hours'"),
                (bob, shop, "pending", "4.00", f"{this_month} + interval '5 hours'"),
                (alice, other_shop, "confirmed", "1.25", f"{this_month} - interval '40 days'"),
            ]
            for n, (user_id, merchant_id, status, cashback, created_at) in enumerate(purchases):
                await conn.execute(
                    "INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, status, "
                    f"cashback_amount, created_at) VALUES ($1, $2, $3, $4, 100, 'EUR', $5, $6, {created_at})",
                    f"pre-{n}",
                    user_id,
                    merchant_id,
                    offers[merchant_id],
                    status,
                    Decimal(cashback),
                )

            assert _file(4) in await db_migrations.upgrade(url)
            totals = {
                (r["user_id"], r["offer_id"]): r["earned"]
                for r in await conn.fetch(
                    "SELECT user_id, offer_id, earned FROM cashback_monthly_totals "
                    "WHERE month = date_trunc('month', now() AT TIME ZONE 'UTC')::date"
                )
            }
            assert totals == {(alice, offers[shop]): Decimal("30.50"), (bob, offers[shop]): Decimal("4.00")}
            assert await conn.fetchval("SELECT count(*) FROM cashback_monthly_totals") == 4
            await assert_totals_match_purchases(conn)
            head_body = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'record_purchase'")
            assert "cashback_monthly_totals" in head_body and "sum(e.cashback_amount)" not in head_body
            assert await _record(conn, alice, "at-4", shop, "200.00") == ("recorded", Decimal("10.00"))
            assert await _record(conn, alice, "at-4-b", shop, "200.00") == ("recorded", Decimal("9.50"))
            await assert_totals_match_purchases(conn)

            assert _file(4) in await db_migrations.downgrade_to(url, 3)
            after = await _objects(url)
            assert "cashback_monthly_totals" not in after["tables"]
            assert not {t for t in after["triggers"] if "monthly_totals" in t}
            assert await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'record_purchase'") == m3_body
            assert (
                await conn.fetchval("SELECT count(*) FROM pg_proc WHERE proname LIKE 'cashback_monthly_totals%'") == 0
            )
            # Migration 3's sum sees the purchases recorded at migration 4: the cap is reached.
            assert await _record(conn, bob, "at-3", shop, "1000.00") == ("recorded", Decimal("46.00"))
            assert await _record(conn, alice, "at-3-b", shop, "100.00") == ("recorded", Decimal("0.00"))

            assert _file(4) in await db_migrations.upgrade(url)
            await assert_totals_match_purchases(conn)
            assert await conn.fetchval(
                "SELECT earned FROM cashback_monthly_totals WHERE user_id = $1 AND offer_id = $2 "
                "AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date",
                bob,
                offers[shop],
            ) == Decimal("50.00")
            assert await _record(conn, bob, "at-4-again", shop, "100.00") == ("recorded", Decimal("0.00"))
        finally:
            await conn.close()
    finally:
        databases.drop(name)


async def test_ops_cli_reports_status_as_json(database_url):
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", "migrate", "--status"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "ENV_FILE": "/dev/null"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["db_head"] == status["code_head"] == db_migrations.code_head()
    assert status["pending"] == []


def test_no_migration_reads_another_migration_and_rules_are_applied_by_name():
    """Each migration stands alone: rules come from server/purchases/sql/ by name, never from a
    sibling migration's text (by path, import or string replacement)."""
    from server.purchases.rules import SQL_DIR

    for name in db_migrations.migration_files():
        text = (db_migrations.MIGRATIONS_DIR / db_migrations.APP / name).read_text()
        assert "spec_from_file_location" not in text and "importlib" not in text, name
        assert ".replace(" not in text, name
        for other in db_migrations.migration_files():
            assert other == name or other.removesuffix(".py") not in text, (name, other)
    for path in SQL_DIR.glob("*.sql"):  # every rule file has a user: a migration or the ops rebuild
        users = [
            name
            for name in db_migrations.migration_files()
            if f'sql_file("{path.stem}")' in (db_migrations.MIGRATIONS_DIR / db_migrations.APP / name).read_text()
        ]
        assert users, path.name

"""The Tortoise models say exactly what the migrations made: every table has a model, every column
a field with its name, type, nullability, default, uniqueness and foreign key; a query runs
through every model; and Aerich finds nothing to migrate on the unchanged tree."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from tortoise.context import TortoiseContext
from tortoise.fields.base import DB_DEFAULT_NOT_SET
from tortoise.fields.db_defaults import SqlDefault
from tortoise.fields.relational import ForeignKeyFieldInstance, OneToOneFieldInstance

from server import db_migrations
from server.db import tortoise_config

ON_DELETE = {"c": "CASCADE", "r": "RESTRICT", "a": "NO ACTION", "n": "SET NULL", "d": "SET DEFAULT"}
CAST = re.compile(r"::[a-z ]+(\(\d+(,\d+)?\))?")


def _default_text(value) -> str | None:
    """A default as PostgreSQL prints it in information_schema, without casts."""
    if value is None or value is DB_DEFAULT_NOT_SET:
        return None
    if isinstance(value, SqlDefault):
        text = value.sql
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = "'" + value.replace("'", "''") + "'"
    else:
        text = str(value)
    return CAST.sub("", text)


@pytest.fixture
async def orm(database_url):
    context = TortoiseContext()
    with context:
        await context.init(tortoise_config(database_url, 1, 2, aerich=False))
        yield context
        await context.close_connections()


def _models(context):
    return list(context.apps["models"].values())


async def _columns(conn, table: str) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,"
        " pg_get_expr(d.adbin, d.adrelid) AS default_sql, a.attidentity <> '' AS identity"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        table,
    )
    return {row["name"]: row for row in rows}


async def test_every_table_has_a_model_and_every_column_a_field_as_migrated(orm, conn):
    models = _models(orm)
    tables = {
        row["tablename"] for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    } - {"aerich"}
    assert {model._meta.db_table for model in models} == tables
    mismatches = []
    for model in models:
        meta, table = model._meta, model._meta.db_table
        columns = await _columns(conn, table)
        projection = meta.fields_db_projection  # field name -> column
        assert set(projection.values()) == set(columns), table
        # Each field's SQL type, as PostgreSQL spells it: declared on a scratch table.
        types = {name: meta.fields_map[name].get_for_dialect("postgres", "SQL_TYPE") for name in projection}
        scratch = f"scratch_{table}"
        await conn.execute(
            f"CREATE TEMP TABLE {scratch} ({', '.join(f'{projection[n]} {t}' for n, t in types.items())})"
        )
        declared = await _columns(conn, scratch)
        for name, column in projection.items():
            field, actual = meta.fields_map[name], columns[column]
            expected = {
                "type": declared[column]["type"],
                "nullable": bool(field.null),
                "default": None if actual["identity"] else _default_text(field.db_default),
            }
            found = {"type": actual["type"], "nullable": actual["nullable"], "default": actual["default_sql"]}
            found["default"] = CAST.sub("", found["default"]) if found["default"] else None
            if expected != found:
                mismatches.append((table, column, expected, found))
    assert not mismatches, mismatches


async def test_foreign_keys_and_unique_columns_are_the_models(orm, conn):
    foreign = {
        (row["tab"], row["col"]): (row["ref"], ON_DELETE[row["deltype"]])
        for row in await conn.fetch(
            "SELECT c.conrelid::regclass::text AS tab, a.attname AS col, c.confrelid::regclass::text AS ref,"
            " c.confdeltype::text AS deltype FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace"
        )
    }
    unique = {
        (row["tab"], row["col"])
        for row in await conn.fetch(
            "SELECT i.indrelid::regclass::text AS tab, a.attname AS col FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " JOIN pg_class t ON t.oid = i.indrelid AND t.relnamespace = 'public'::regnamespace"
            " WHERE i.indisunique AND NOT i.indisprimary AND i.indnatts = 1 AND i.indpred IS NULL"
            " AND i.indexprs IS NULL"
        )
    }
    modelled_foreign, modelled_unique = {}, set()
    for model in _models(orm):
        meta = model._meta
        for name in meta.fk_fields | meta.o2o_fields:
            field = meta.fields_map[name]
            column = meta.fields_db_projection[field.source_field]
            modelled_foreign[(meta.db_table, column)] = (field.related_model._meta.db_table, str(field.on_delete))
            if isinstance(field, OneToOneFieldInstance) and not field.pk:
                modelled_unique.add((meta.db_table, column))
        for name, column in meta.fields_db_projection.items():
            field = meta.fields_map[name]
            if field.unique and not field.pk and not isinstance(field, ForeignKeyFieldInstance):
                modelled_unique.add((meta.db_table, column))
    assert modelled_foreign == foreign
    assert modelled_unique == unique


async def test_a_query_runs_through_every_model(orm):
    from server.audit.models import AuditDayCount, AuditLog
    from server.auth.models import LoginAttempt, RefreshToken
    from server.flags.models import FeatureFlag
    from server.merchants.models import Merchant
    from server.offers.models import Offer
    from server.payouts.models import Payout
    from server.purchases.models import CashbackMonthlyTotal, CashbackTransaction, Purchase, PurchaseMonthCount
    from server.users.models import User
    from server.wallets.models import Wallet

    user = await User.create(email="orm@example.test", hashed_password="x")
    assert user.role == "user" and user.active is True and user.created_at is not None  # database defaults
    admin = await User.create(email="admin@example.test", hashed_password="x", role="admin")
    await Wallet.create(user=user)
    merchant = await Merchant.create(name="Orm Shop", default_cashback_percentage=Decimal("5.00"))
    today = datetime.now(UTC).date()
    offer = await Offer.create(
        merchant=merchant,
        percentage=Decimal("10.00"),
        start_date=today,
        end_date=today + timedelta(days=30),
        monthly_cap_per_user=Decimal("50.00"),
    )
    purchase = await Purchase.create(
        external_id="orm-1",
        user=user,
        merchant=merchant,
        offer=offer,
        amount=Decimal("10.00"),
        currency="EUR",
        cashback_amount=Decimal("1.00"),
    )
    await CashbackTransaction.create(user=user, purchase=purchase, amount=Decimal("1.00"), status="pending")
    await Payout.create(
        user=user,
        amount=Decimal("1.00"),
        status="completed",
        processed_at=datetime.now(UTC),
        processed_by=admin,
    )
    await FeatureFlag.create(key="orm_flag")
    await AuditLog.create(actor_type="admin", actor_id=admin.id, action="x", resource_type="user", resource_id=user.id)
    await RefreshToken.create(user=user, token_hash="a" * 64, expires_at=datetime.now(UTC) + timedelta(days=1))
    await LoginAttempt.create(email="orm@example.test", ip="192.0.2.7")

    assert await Payout.filter(processed_by_id=admin.id).values_list("processed_by_id", flat=True) == [admin.id]
    assert (await LoginAttempt.get(email="orm@example.test")).ip == "192.0.2.7"
    assert (await Purchase.get(id=purchase.id)).currency == "EUR"
    total = await CashbackMonthlyTotal.get(user_id=user.id, offer_id=offer.id, month=today.replace(day=1))
    assert total.earned == Decimal("1.00")  # kept by the trigger
    counted = await PurchaseMonthCount.get(user_id=user.id, month=today.replace(day=1), status="pending")
    assert counted.n == 1  # kept by the trigger too
    assert sum(row.n for row in await AuditDayCount.filter(action="x")) == 1  # and the audit's day count
    for model in (
        User, Wallet, Merchant, Offer, Purchase, CashbackTransaction, CashbackMonthlyTotal, PurchaseMonthCount,
        Payout, FeatureFlag, AuditLog, AuditDayCount, RefreshToken, LoginAttempt,
    ):  # fmt: skip
        rows = await model.all().values()
        instances = await model.all()
        assert rows and len(instances) == len(rows), model.__name__


async def test_aerich_finds_no_change_between_the_models_and_the_last_migration(database_url, tmp_path):
    """So the next schema change can start from `aerich migrate`."""
    from aerich import Command

    location = tmp_path / "migrations"
    shutil.copytree(db_migrations.MIGRATIONS_DIR, location)
    before = sorted(path.name for path in (location / db_migrations.APP).iterdir())
    config = tortoise_config(database_url, 1, 2)
    async with TortoiseContext(), Command(config, app=db_migrations.APP, location=str(location)) as command:
        written = await command.migrate("drift_check", no_input=True)
    assert written == ""
    assert sorted(path.name for path in (location / db_migrations.APP).iterdir()) == before

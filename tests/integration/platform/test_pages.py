"""server/pagination.page_of: a page of a queryset and its exact total (API.md §1.5) in one
statement, the count reading the filtered table alone."""

from __future__ import annotations

import re

import pytest
from tortoise.transactions import in_transaction

from server import db
from server.flags.models import FeatureFlag
from server.pagination import page_of
from tests.integration.purchases.helpers import ingest, make_shop

NEWEST = ("-created_at", "-id")


async def _flags(conn, count: int, prefix: str = "page") -> None:
    await conn.execute(
        "INSERT INTO feature_flags (key, created_at) "
        "SELECT $1 || '_' || n, now() - n * interval '1 second' FROM generate_series(1, $2) AS n",
        prefix,
        count,
    )


@pytest.fixture
def statements(monkeypatch):
    """The SQL text of every statement the process sends, as QueryStats sees it."""
    seen: list[str] = []
    record = db.QUERY_STATS.record

    def keep(statement: str, elapsed: float, failed: bool) -> None:
        seen.append(statement)
        record(statement, elapsed, failed)

    monkeypatch.setattr(db.QUERY_STATS, "record", keep)
    return seen


async def test_a_page_and_its_total_are_one_statement(client, conn, statements):
    await _flags(conn, 5)
    for offset, limit, keys in ((0, 2, ["page_1", "page_2"]), (4, 2, ["page_5"]), (0, 10, None)):
        statements.clear()
        rows, total = await page_of(FeatureFlag.all(), fields=("key",), order_by=NEWEST, offset=offset, limit=limit)
        assert total == 5 and len(statements) == 1
        if keys is not None:
            assert [row["key"] for row in rows] == keys


async def test_an_empty_page_counts_the_real_total(client, conn, statements):
    await _flags(conn, 4)
    rows, total = await page_of(FeatureFlag.all(), fields=("key",), order_by=NEWEST, offset=50, limit=10)
    assert rows == [] and total == 4
    statements.clear()
    rows, total = await page_of(FeatureFlag.filter(key="absent"), fields=("key",), order_by=NEWEST, offset=0, limit=10)
    assert rows == [] and total == 0 and len(statements) == 1  # no row matches: nothing more to count


async def test_the_purchase_list_counts_purchases_without_the_page_s_joins(client, conn, user, admin, statements):
    merchant, _ = await make_shop(conn)
    for amount in ("10.00", "20.00"):
        assert (await ingest(client, user, merchant, amount)).status_code == 201
    statements.clear()
    response = await client.get("/api/v1/purchases", token=admin.token, params={"merchant_id": merchant, "limit": 1})
    assert response.status_code == 200 and response.json()["pagination"]["total"] == 2
    (page_sql,) = [sql for sql in statements if "purchases" in sql and "LIMIT" in sql]
    count = re.search(r"\(SELECT COUNT\(\*\) FROM (.*?)\)", page_sql)
    assert count and "JOIN" not in count.group(1).upper(), page_sql
    assert "JOIN" in page_sql.upper()  # the page itself reads the merchant's name and the transaction


async def test_the_page_size_is_written_into_the_statement(client, conn, statements):
    await _flags(conn, 3)
    statements.clear()
    await page_of(FeatureFlag.all(), fields=("key",), order_by=NEWEST, offset=1, limit=2)
    (sql,) = statements
    assert re.search(r"LIMIT 2\b", sql) and not re.search(r"LIMIT \$", sql), sql


async def _plans(run, tx, statements) -> dict[str, int]:
    """Run one page ten times on `tx`'s connection: how PostgreSQL planned its statement."""
    for _ in range(10):
        statements.clear()
        await run()
    (sql,) = statements
    (row,) = await tx.execute_query_dict(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", [sql]
    )
    return {"sql": sql, **row}


async def test_a_page_keeps_its_plan_where_a_limit_parameter_would_plan_every_request(client, conn, statements):
    # 60,000 rows: `LIMIT $n`, read as a tenth of them, makes the kept (generic) plan sort 6,000 rows,
    # so PostgreSQL plans each execution again; with the size written in, it keeps one (ADR 0048).
    await _flags(conn, 60_000, prefix="plan")
    await conn.execute("ANALYZE feature_flags")
    async with in_transaction() as tx:
        flags = FeatureFlag.all().using_db(tx)
        written = await _plans(
            lambda: page_of(flags, fields=("key",), order_by=NEWEST, offset=0, limit=10), tx, statements
        )
        # The same page as Tortoise sends it by default, its size a parameter.
        sent = await _plans(lambda: flags.order_by(*NEWEST).limit(10).values("key"), tx, statements)
    assert "LIMIT 10" in written["sql"] and written["generic_plans"] >= 4, written
    assert "LIMIT $" in sent["sql"] and (sent["generic_plans"], sent["custom_plans"]) == (0, 10), sent

"""The rows that arrive with every purchase get version-4 ids whose first 48 bits are the millisecond
they were made in (server/sql/time_prefixed_uuid.sql, docs/adr/0047-time-prefixed-ids.md)."""

from __future__ import annotations

import uuid

from server.ids import time_prefixed_uuid
from tests.integration.purchases.helpers import ingest, make_shop

NOW_MS = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


def millisecond_of(value: uuid.UUID | str) -> int:
    return int(str(value).replace("-", "")[:12], 16)


def assert_api_v4(value: uuid.UUID | str) -> None:
    """API.md §1: new ids are UUID v4 (RFC 9562 variant)."""
    parsed = uuid.UUID(str(value))
    assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122), value


async def test_ids_are_v4_with_the_millisecond_first_and_sort_in_the_order_they_were_made(conn):
    before = await conn.fetchval(NOW_MS)
    ids = [row["id"] for row in await conn.fetch("SELECT time_prefixed_uuid() AS id FROM generate_series(1, 5000)")]
    after = await conn.fetchval(NOW_MS)
    for value in ids:
        assert_api_v4(value)
    assert len(set(ids)) == len(ids)
    made = [millisecond_of(value) for value in ids]
    assert before <= made[0] and made[-1] <= after, (before, made[0], made[-1], after)
    assert made == sorted(made)  # in the order generated
    # 74 random bits after the time: ids of one millisecond still differ in more than a counter.
    same_ms = [str(value) for value in ids if millisecond_of(value) == made[0]]
    assert len({value[14:] for value in same_ms}) == len(same_ms)


async def test_the_python_twin_for_rows_tortoise_creates_has_the_same_layout(conn):
    before = await conn.fetchval(NOW_MS)
    made = [time_prefixed_uuid() for _ in range(1000)]
    sql_made = await conn.fetchval("SELECT time_prefixed_uuid()")
    for value in made:
        assert_api_v4(value)
    assert len(set(made)) == len(made)
    # One clock here (loopback): the Python ids fall between two readings of the database's.
    assert before <= millisecond_of(made[0]) <= millisecond_of(made[-1]) <= millisecond_of(sql_made)


async def test_purchases_cashback_transactions_and_audit_rows_default_to_it_and_other_tables_stay_random(conn):
    defaults = dict(
        await conn.fetch(
            "SELECT table_name, column_default FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'id' AND data_type = 'uuid'"
        )
    )
    prefixed = {table for table, default in defaults.items() if default == "time_prefixed_uuid()"}
    assert prefixed == {"purchases", "cashback_transactions", "audit_logs"}
    assert {defaults[table] for table in defaults.keys() - prefixed} == {"gen_random_uuid()"}


async def test_an_ingested_purchase_and_its_cashback_transaction_get_ids_of_the_moment(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    before = await conn.fetchval(NOW_MS)
    response = await ingest(client, user, merchant_id)
    after = await conn.fetchval(NOW_MS)
    assert response.status_code == 201, response.text
    purchase_id = response.json()["id"]
    transaction_id = await conn.fetchval("SELECT id FROM cashback_transactions WHERE purchase_id = $1", purchase_id)
    for value in (purchase_id, transaction_id):
        assert_api_v4(value)
        assert before <= millisecond_of(value) <= after


async def test_an_audit_row_gets_an_id_of_the_moment(client, conn, admin):
    before = await conn.fetchval(NOW_MS)
    response = await client.post(
        "/api/v1/merchants", token=admin.token, json={"name": "Prefix", "default_cashback_percentage": 5.0}
    )
    after = await conn.fetchval(NOW_MS)
    assert response.status_code == 201, response.text
    audit_id = await conn.fetchval("SELECT id FROM audit_logs WHERE resource_id = $1", uuid.UUID(response.json()["id"]))
    assert_api_v4(audit_id)
    assert before <= millisecond_of(audit_id) <= after

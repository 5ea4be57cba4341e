"""Ingestion costs one statement after authentication: `SELECT * FROM record_purchase(...)`.

Every statement the service sends is captured with a query logger on each of the pool's
connections (asyncpg keeps it across releases). The authentication's own statements are whatever
a request refused at the ownership check sends (same endpoint, same caller), so the claim holds
however the caller lookup is issued (one statement, batched, or none)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from server import db
from tests.integration.purchases.helpers import assert_consistent, ingest, make_shop, purchase_body, wallet_row

URL = "/api/v1/purchases"


async def capture_statements() -> list[str]:
    """From now on, the text of every statement sent on any of the service's pooled connections."""
    statements: list[str] = []
    pool = db.pool()
    connections = await asyncio.gather(*(pool.acquire() for _ in range(pool.get_max_size())))
    try:
        for connection in connections:
            connection.add_query_logger(lambda record: statements.append(record.query))
    finally:
        for connection in connections:
            await pool.release(connection)
    return statements


async def authentication_statements(client, user, statements: list[str]) -> list[str]:
    """What a request of this caller sends when it is refused right after authentication (403)."""
    statements.clear()
    body = purchase_body(user, str(uuid.uuid4()))
    body["user_id"] = str(uuid.uuid4())  # not the caller
    assert (await client.post(URL, token=user.token, json=body)).status_code == 403
    return list(statements)


def service_statements(sent: list[str], authentication: list[str]) -> list[str]:
    """The statements of an ingestion that authentication does not account for."""
    remaining = list(authentication)
    own = []
    for statement in sent:
        if statement in remaining:
            remaining.remove(statement)
        else:
            own.append(statement)
    return own


@pytest.mark.parametrize("case", ["recorded", "duplicate", "offer_missing"])
async def test_an_ingestion_sends_one_statement_after_authentication(client, conn, user, case):
    merchant_id, offer_id = await make_shop(conn)
    if case == "duplicate":
        assert (await ingest(client, user, merchant_id, "75.00", external_id="once")).status_code == 201
    if case == "offer_missing":
        await conn.execute("UPDATE offers SET active = false WHERE id = $1", offer_id)
    before = await wallet_row(conn, user.id)
    statements = await capture_statements()
    authentication = await authentication_statements(client, user, statements)

    statements.clear()
    response = await ingest(client, user, merchant_id, "75.00", external_id="once" if case == "duplicate" else None)
    sent = list(statements)

    assert response.status_code == {"recorded": 201, "duplicate": 409, "offer_missing": 422}[case], response.text
    assert service_statements(sent, authentication) == ["SELECT * FROM record_purchase($1, $2, $3, $4, $5)"]
    assert len([s for s in sent if "record_purchase" in s]) == 1
    credit = Decimal("3.75") if case == "recorded" else Decimal("0")
    assert (await wallet_row(conn, user.id))["pending"] == before["pending"] + credit
    await assert_consistent(conn)

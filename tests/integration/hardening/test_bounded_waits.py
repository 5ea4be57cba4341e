"""Every wait is bounded (API.md §1.9): a held row lock, a saturated pool and a slow statement
each answer 503 SERVICE_BUSY with Retry-After, write nothing, and leave other users served."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from server.app import create_app
from server.db import parse_database_url
from tests.conftest import with_settings
from tests.integration.purchases.helpers import ingest, make_shop
from tests.integration.purchases.test_concurrency import wait_until_blocked_by
from tests.support.client import AppClient


def _assert_busy(response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "SERVICE_BUSY"
    assert int(response.headers["retry-after"]) >= 1


@asynccontextmanager
async def _serving(settings, **changes) -> AsyncIterator[AppClient]:
    app_client = AppClient(create_app(with_settings(settings, **changes)))
    await app_client.start()
    try:
        yield app_client
    finally:
        await app_client.stop()


@asynccontextmanager
async def _wallet_locked(database_url: str, user_id: str) -> AsyncIterator[asyncpg.Connection]:
    """Another session holds the user's wallet row lock, as `SELECT ... FOR UPDATE` in psql would."""
    holder = await asyncpg.connect(**parse_database_url(database_url))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM wallets WHERE user_id = $1 FOR UPDATE", user_id)
            yield holder
    finally:
        await holder.close()


async def test_a_held_wallet_lock_is_503_service_busy_and_other_users_are_served(settings, conn, make_account):
    alice, bob = await make_account(), await make_account()
    merchant_id, _ = await make_shop(conn)
    async with _serving(settings) as client, _wallet_locked(settings.database_url, alice.id) as holder:
        started = time.monotonic()
        purchases = [
            asyncio.ensure_future(ingest(client, alice, merchant_id, "10.00", external_id=f"held-{n}"))
            for n in range(3)
        ]
        await wait_until_blocked_by(settings.database_url, holder)
        bob_started = time.monotonic()
        me = await client.get("/api/v1/users/me", bob.token)
        assert me.status_code == 200 and time.monotonic() - bob_started < 1.5
        assert (await client.get("/health/ready")).status_code == 200  # it does serve: ready is honest
        answers = await asyncio.gather(*purchases)
        assert time.monotonic() - started < 6  # DB_LOCK_TIMEOUT_MS (2 s), not the 60 s of Sanic's own timeout
    for response in answers:
        _assert_busy(response)
    assert await conn.fetchval("SELECT count(*) FROM purchases WHERE user_id = $1", alice.id) == 0


async def test_a_saturated_pool_is_503_service_busy_after_the_pool_bound(settings, conn, make_account):
    alice, bob = await make_account(), await make_account()
    merchant_id, _ = await make_shop(conn)
    async with (
        _serving(settings, db_pool_max_size=2, db_pool_timeout_seconds=0.5, db_lock_timeout_ms=10_000) as client,
        _wallet_locked(settings.database_url, alice.id) as holder,
    ):
        purchases = [
            asyncio.ensure_future(ingest(client, alice, merchant_id, "10.00", external_id=f"pool-{n}"))
            for n in range(2)
        ]
        await wait_until_blocked_by(settings.database_url, holder)
        started = time.monotonic()
        me = await client.get("/api/v1/users/me", bob.token)
        _assert_busy(me)
        assert time.monotonic() - started < 3
        await holder.execute("SELECT 1")  # still holding; the lock goes with the transaction below
    statuses = sorted(response.status_code for response in await asyncio.gather(*purchases))
    assert statuses == [201, 201]  # released in time: the waits were within their bound


async def test_a_statement_past_its_bound_is_503_service_busy(settings, conn, make_account):
    alice = await make_account()
    merchant_id, _ = await make_shop(conn)
    async with (
        _serving(settings, db_lock_timeout_ms=30_000, db_statement_timeout_ms=300) as client,
        _wallet_locked(settings.database_url, alice.id),
    ):
        started = time.monotonic()
        response = await ingest(client, alice, merchant_id, "10.00", external_id="slow")
        _assert_busy(response)
        assert time.monotonic() - started < 3
    assert await conn.fetchval("SELECT count(*) FROM purchases WHERE user_id = $1", alice.id) == 0

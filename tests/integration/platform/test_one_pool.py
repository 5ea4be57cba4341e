"""Tortoise owns the process's one asyncpg pool: ORM querysets and raw SQL take their connections
from it, first come first served, and both are counted by QueryStats."""

from __future__ import annotations

import asyncio

from tortoise.connection import connections
from tortoise.transactions import in_transaction

from server import db
from server.users.models import User


async def test_the_orm_and_raw_sql_share_tortoise_s_one_pool(client, user):
    client_pool = connections.get("default")._pool
    assert client_pool is db.pool()
    assert isinstance(client_pool, db.FairPool)
    before = db.QUERY_STATS.snapshot()["total"]
    orm_email = await User.filter(id=user.id).values_list("email", flat=True)
    raw_email = await db.fetchval("SELECT email FROM users WHERE id = $1", user.id)
    assert orm_email == [user.email] and raw_email == user.email
    assert db.QUERY_STATS.snapshot()["total"] >= before + 2  # the ORM's query was counted too


async def test_requests_go_through_the_orm_in_the_app_s_context(client, user):
    response = await client.get("/api/v1/users/me", token=user.token)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user.email


async def _until(condition, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


async def test_waiters_get_connections_in_arrival_order_orm_and_raw_alike(client, user):
    pool = db.pool()
    held = [await pool.acquire() for _ in range(pool.get_max_size())]  # every connection busy
    order: list[str] = []
    done = asyncio.Event()

    async def raw(name: str) -> None:
        async with db.connection() as conn:
            await conn.fetchval("SELECT 1")
            order.append(name)
            await done.wait()  # keep the connection: each released one has exactly one taker

    async def orm(name: str) -> None:
        async with in_transaction() as tx:
            await tx.execute_query("SELECT 1")
            order.append(name)
            await done.wait()

    names = [f"w{i}" for i in range(6)]
    waiters = []
    try:
        for i, name in enumerate(names):
            waiters.append(asyncio.ensure_future((raw if i % 2 else orm)(name)))
            await _until(lambda i=i: len(pool._turns._waiters or ()) == i + 1)  # queued before the next arrives
        for taken, connection in enumerate(held[: len(names)], start=1):
            await pool.release(connection)
            await _until(lambda taken=taken: len(order) == taken)
        done.set()
        await asyncio.wait_for(asyncio.gather(*waiters), timeout=10)
        for connection in held[len(names) :]:
            await pool.release(connection)
    finally:
        for waiter in waiters:
            waiter.cancel()
    assert order == names


async def test_stopping_closes_the_pool_and_the_context(settings):
    from server.app import create_app
    from tests.support.client import AppClient

    app_client = AppClient(create_app(settings))
    await app_client.start()
    pool = db.pool()
    await app_client.stop()
    assert pool._pool._closed
    try:
        db.pool()
    except RuntimeError:
        pass
    else:
        raise AssertionError("the pool outlived its server")

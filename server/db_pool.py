"""The process's one asyncpg pool as Tortoise opens it: handed out first come, first served, and
waited for at most API.md §1.9's bound. This module is the Tortoise "engine" that server.db's
configuration names, so the ORM and raw SQL share the same pool and the same queue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient


@dataclass(frozen=True)
class WaitBounds:
    """How long a request may wait (API.md §1.9): for a pooled connection, then, as each pooled
    connection's settings, for a row lock and for one statement. Running out of any of them is
    503 SERVICE_BUSY (server/errors.py), and the transaction rolls back."""

    pool_seconds: float = 5.0
    lock_ms: int = 2000
    statement_ms: int = 10000

    def server_settings(self) -> dict[str, str]:
        return {
            "application_name": "clicknback",
            "lock_timeout": str(self.lock_ms),
            "statement_timeout": str(self.statement_ms),
        }


class PoolTimeout(TimeoutError):
    """No pooled connection came free within WaitBounds.pool_seconds."""


class FairPool:
    """The asyncpg pool, handing its connections out first come, first served.

    When every connection is busy, asyncpg's own wait queue lets a newly arrived request take a
    released connection before the requests already waiting (asyncio.Queue re-queues a woken
    getter at the back), so under load a few unlucky requests wait several times the median. A
    FIFO semaphore of the pool's size in front of it hands connections over in arrival order, to
    Tortoise's queries and to raw SQL alike. Anything else (sizes, close) is the asyncpg pool's own."""

    def __init__(self, pool: asyncpg.Pool, size: int, wait_seconds: float | None) -> None:
        self._pool = pool
        self._turns = asyncio.Semaphore(size)
        self._wait_seconds = wait_seconds

    def acquire(self) -> _FairAcquire:
        return _FairAcquire(self)

    async def _acquire(self) -> asyncpg.Connection:
        await self._take_turn()
        try:
            return await self._pool.acquire()
        except BaseException:
            self._turns.release()
            raise

    async def _take_turn(self) -> None:
        """A turn in arrival order, waited for at most `wait_seconds` (None: as long as it takes);
        a free one costs no timer."""
        if self._wait_seconds is None or not self._turns.locked():
            await self._turns.acquire()
            return
        try:
            await asyncio.wait_for(self._turns.acquire(), self._wait_seconds)
        except TimeoutError:
            raise PoolTimeout(f"no database connection came free within {self._wait_seconds:g} s") from None

    async def release(self, connection: asyncpg.Connection, *, timeout: float | None = None) -> None:
        try:
            await self._pool.release(connection, timeout=timeout)
        finally:
            self._turns.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class _FairAcquire:
    """`pool.acquire()`, awaitable or as `async with`, as asyncpg's own."""

    __slots__ = ("_fair", "_connection")

    def __init__(self, fair: FairPool) -> None:
        self._fair = fair
        self._connection: asyncpg.Connection | None = None

    def __await__(self) -> Any:
        return self._fair._acquire().__await__()

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection = await self._fair._acquire()
        return self._connection

    async def __aexit__(self, *exc: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._fair.release(connection)


class FairAsyncpgClient(AsyncpgDBClient):
    """Tortoise's asyncpg client, its pool wrapped in `FairPool`."""

    async def create_pool(self, **kwargs: Any) -> Any:
        wait_seconds = kwargs.pop("pool_wait_seconds", None)
        return FairPool(await super().create_pool(**kwargs), self.pool_maxsize, wait_seconds)


client_class = FairAsyncpgClient  # Tortoise's engine hook: this module is the "engine" of tortoise_config

"""Database access: Tortoise ORM, which owns the process's one asyncpg pool, and raw helpers on it.

Services use Tortoise querysets. A statement stays raw SQL only where a `make bench` row needs it
(docs/adr/0002-orm-boundary-and-raw-sql.md); those take a connection from the same pool through
`transaction()`, `connection()` and `fetch*`. The pool hands connections out first come, first
served (`FairPool`), to the ORM and to raw SQL alike, and every query passes through `QueryStats`,
which counts it and logs slow ones with their duration and statement, never their parameters.
The pool's connection parameters are built in one place, `pool_credentials()`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlparse

import asyncpg
from loguru import logger
from tortoise.context import TortoiseContext
from tortoise.exceptions import DBConnectionError

from server.config import database_address
from server.db_pool import FairPool, WaitBounds

T = TypeVar("T")

MODEL_MODULES = [
    "server.users.models",
    "server.auth.models",
    "server.merchants.models",
    "server.offers.models",
    "server.purchases.models",
    "server.wallets.models",
    "server.payouts.models",
    "server.flags.models",
    "server.audit.models",
]


@dataclass
class QueryStats:
    """Per-process query counters for /debug/database-stats."""

    slow_threshold_ms: int = 1000
    total: int = 0
    errors: int = 0
    slow: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, statement: str, elapsed_seconds: float, failed: bool) -> None:
        duration_ms = elapsed_seconds * 1000.0
        with self._lock:
            self.total += 1
            if failed:
                self.errors += 1
            is_slow = duration_ms > self.slow_threshold_ms
            if is_slow:
                self.slow += 1
        if is_slow:
            logger.bind(event="db.slow_query", duration_ms=round(duration_ms, 3), statement=statement).warning(
                "slow query"
            )

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "total": self.total,
                "errors": self.errors,
                "slow": self.slow,
                "slow_threshold_ms": self.slow_threshold_ms,
            }


QUERY_STATS = QueryStats()


def _on_query(record: Any) -> None:
    QUERY_STATS.record(record.query, record.elapsed or 0.0, record.exception is not None)


async def _instrument_connection(connection: asyncpg.Connection) -> None:
    connection.add_query_logger(_on_query)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release hook. asyncpg's default reset costs a round trip per acquire (RESET ALL,
    UNLISTEN, advisory unlock); the service keeps no session state (only transaction-scoped
    locks and settings), and asyncpg still rolls back any open transaction before this runs."""


def parse_database_url(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    host, port = database_address(url)
    return {
        "host": host,
        "port": port,
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password) if parsed.password else None,
        "database": parsed.path.lstrip("/"),
    }


def pool_credentials(
    database_url: str, min_size: int, max_size: int, bounds: WaitBounds | None = None
) -> dict[str, Any]:
    """Every connection parameter of the process's pool, in Tortoise's credentials form (the sizes
    as `minsize`/`maxsize`; the rest is passed through to asyncpg.create_pool). The one place
    they are built: the service, the job and Aerich all open their pool from here."""
    credentials = parse_database_url(database_url)
    credentials.update(
        {
            "minsize": min_size,
            "maxsize": max_size,
            "init": _instrument_connection,  # count and time every query
            "reset": _keep_session,
            "server_settings": {"application_name": "clicknback"},
        }
    )
    if bounds is not None:  # the service's requests; Aerich's migrations run unbounded
        credentials["server_settings"] = bounds.server_settings()
        credentials["pool_wait_seconds"] = bounds.pool_seconds  # taken off by FairAsyncpgClient.create_pool
    return credentials


def tortoise_config(
    database_url: str,
    min_size: int = 1,
    max_size: int = 10,
    aerich: bool = True,
    bounds: WaitBounds | None = None,
) -> dict[str, Any]:
    """Aerich's own model (its history table) only where Aerich runs: importing it would slow the
    service's start, and so every rollback."""
    models = [*MODEL_MODULES, "aerich.models"] if aerich else MODEL_MODULES
    return {
        "connections": {
            "default": {
                "engine": "server.db_pool",
                "credentials": pool_credentials(database_url, min_size, max_size, bounds),
            }
        },
        "apps": {"models": {"models": models, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    """TORTOISE_ORM, for the aerich CLI (pyproject [tool.aerich]); the service builds its own from
    Settings. Read on use, not on import: every process that imports this module (the service, the
    ops CLI) would otherwise parse DATABASE_URL before it can report a bad one in one line."""
    if name == "TORTOISE_ORM":
        return tortoise_config(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/clicknback"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_context: TortoiseContext | None = None
_pool: FairPool | None = None


async def init_db(
    database_url: str,
    min_size: int,
    max_size: int,
    slow_query_ms: int,
    wait_seconds: float = 0,
    bounds: WaitBounds | None = None,
) -> None:
    """Initialise Tortoise and open its pool; wait up to `wait_seconds` for a PostgreSQL that is not
    accepting connections yet.

    The context is also the process's global fallback: Sanic's request tasks do not inherit a
    context variable set in a listener, so without it every query would fail with "No
    TortoiseContext is currently active"."""
    global _context, _pool
    bounds = bounds or WaitBounds()
    if _context is not None:  # a server of this process that did not stop cleanly (tests)
        await close_db()
    QUERY_STATS.slow_threshold_ms = slow_query_ms
    context = TortoiseContext()
    with context:  # current while Tortoise reads the models
        await context.init(
            tortoise_config(database_url, min_size, max_size, aerich=False, bounds=bounds), _enable_global_fallback=True
        )
    _context = context
    client = context.db()

    async def connect() -> None:
        try:
            await client.create_connection(with_db=True)
        except DBConnectionError as error:  # Tortoise's wrapper of asyncpg's own (an unknown database)
            raise (error.__cause__ or error) from None

    try:
        await when_reachable(connect, wait_seconds)
    except BaseException:
        await close_db()
        raise
    _pool = cast(FairPool, client._pool)


# PostgreSQL not accepting connections yet: down or not yet listening (refused, no socket file),
# starting up or in crash recovery (CannotConnectNow), or out of connection slots. These pass.
# A wrong password or an unknown database do not, so they are not waited for.
NOT_YET_REACHABLE = (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)  # then every 2 s


async def when_reachable(connect: Callable[[], Awaitable[T]], wait_seconds: float) -> T:
    """`connect()`, retried while PostgreSQL is not reachable yet, for up to `wait_seconds`.

    After a host reboot supervisor can start the instances before PostgreSQL has finished its
    recovery. An instance that gave up at once would die within supervisor's `startsecs`, and after
    `startretries` such starts supervisor leaves it FATAL: nginx answers 502 until someone comes.
    Waiting here outlives `startsecs`, and if the time runs out the exit is a crash of a running
    program, which supervisor restarts without limit. Other errors are raised at once; so is the
    last one when the time is up."""
    deadline = time.monotonic() + wait_seconds
    attempt = 0
    while True:
        try:
            return await connect()
        except NOT_YET_REACHABLE as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            if attempt % 10 == 0:  # the first failure, then about every 20 s
                logger.bind(event="db.waiting", error=type(error).__name__, seconds_left=round(left)).warning(
                    "database not reachable yet; waiting for it"
                )
            await asyncio.sleep(min(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)], left))
            attempt += 1


async def close_db() -> None:
    global _context, _pool
    context, _context, _pool = _context, None, None
    if context is not None:
        await context.close_connections()


def pool() -> FairPool:
    if _pool is None:
        raise RuntimeError("database pool is not initialised")
    return _pool


@asynccontextmanager
async def transaction() -> AsyncIterator[asyncpg.Connection]:
    """One database transaction on a pooled connection; commits on success, rolls back on error."""
    async with pool().acquire() as connection:
        async with connection.transaction():
            yield connection


@asynccontextmanager
async def connection() -> AsyncIterator[asyncpg.Connection]:
    async with pool().acquire() as conn:
        yield conn


async def fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
    async with pool().acquire() as conn:
        return await conn.fetch(sql, *args)


async def fetchrow(sql: str, *args: Any) -> asyncpg.Record | None:
    async with pool().acquire() as conn:
        return await conn.fetchrow(sql, *args)


async def fetchval(sql: str, *args: Any) -> Any:
    async with pool().acquire() as conn:
        return await conn.fetchval(sql, *args)


async def execute(sql: str, *args: Any) -> str:
    async with pool().acquire() as conn:
        return await conn.execute(sql, *args)


class RowsByKey:
    """Reads of one statement by key, made by requests that run in the same event-loop pass, sent
    to PostgreSQL as one statement.

    Under load many requests reach their caller lookup in the same pass of the loop. One
    `WHERE id = ANY($1)` statement for all of them costs one pool turn and one round trip instead
    of one each: fewer statements for PostgreSQL to run, fewer packets for both sides. Each read
    still starts after its request arrived, so it is as fresh as a read of its own. A lone request
    waits for nothing: its statement leaves at the end of the pass that asked for it.

    `sql` must take the array of keys as $1 and return the key in column `key_column`; keys are
    compared as strings, so pass them in the form PostgreSQL prints (canonical UUIDs).
    """

    def __init__(self, sql: str, key_column: str = "id") -> None:
        self.sql = sql
        self.key_column = key_column
        self._waiting: dict[str, list[asyncio.Future]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reads: set[asyncio.Task] = set()  # strong references until each read finishes

    async def fetchrow(self, key: str) -> asyncpg.Record | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new server (tests run several loops in one process)
            self._loop, self._waiting = loop, {}
        future = loop.create_future()
        waiting = self._waiting.setdefault(key, [])
        waiting.append(future)
        if len(self._waiting) == 1 and len(waiting) == 1:  # the pass's first read: send at its end
            loop.call_soon(self._send)
        return await future

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, {}
        if waiting:
            read = asyncio.ensure_future(self._read(waiting))
            self._reads.add(read)
            read.add_done_callback(self._reads.discard)

    async def _read(self, waiting: dict[str, list[asyncio.Future]]) -> None:
        try:
            rows = await fetch(self.sql, list(waiting))
        except BaseException as error:
            for futures in waiting.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(error, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(error)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        found = {str(row[self.key_column]): row for row in rows}
        for key, futures in waiting.items():
            row = found.get(key)
            for future in futures:
                if not future.done():  # its request may have been cancelled (client gone)
                    future.set_result(row)


def monotonic_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0

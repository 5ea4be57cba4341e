"""The readiness checks, on a dedicated connection that never queues behind the request pool."""

from __future__ import annotations

import asyncio

import asyncpg

from server.db import parse_database_url
from server.db_migrations import code_head, db_head_on

CHECK_TIMEOUT_SECONDS = 2.0


class ReadinessProbe:
    """Checks the database and the migration head; concurrent callers share one in-flight check."""

    def __init__(self, database_url: str) -> None:
        self._params = parse_database_url(database_url)
        self._connection: asyncpg.Connection | None = None
        self._in_flight: asyncio.Future | None = None
        self.expected_head = code_head()

    async def check(self) -> dict[str, str]:
        if self._in_flight is None or self._in_flight.done():  # a finished check is never served again
            self._in_flight = asyncio.ensure_future(self._check_once())
            self._in_flight.add_done_callback(self._clear)
        return await asyncio.shield(self._in_flight)

    def _clear(self, finished: asyncio.Future) -> None:
        # Done callbacks run a pass later: by then a newer check may hold the slot. Clearing it
        # would let the next caller start a check beside that one, on the same connection.
        if self._in_flight is finished:
            self._in_flight = None

    async def _check_once(self) -> dict[str, str]:
        try:
            head = await asyncio.wait_for(self._query(), CHECK_TIMEOUT_SECONDS)
        except Exception as error:  # any failure means "not ready", with the reason
            await self._drop_connection()
            reason = "timeout after 2s" if isinstance(error, asyncio.TimeoutError) else type(error).__name__
            return {"database": f"unavailable: {reason}", "migrations": "unknown: database unavailable"}
        if head == self.expected_head:
            migrations = "ok"
        else:
            migrations = f"mismatch: database at {head or 'none'}, release expects {self.expected_head}"
        return {"database": "ok", "migrations": migrations}

    async def _query(self) -> str | None:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(
                **self._params, timeout=CHECK_TIMEOUT_SECONDS, server_settings={"application_name": "clicknback-probe"}
            )
        await self._connection.fetchval("SELECT 1")
        return await db_head_on(self._connection)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def close(self) -> None:
        await self._drop_connection()

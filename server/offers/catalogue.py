"""Pages of /offers/active, cached in the instance and kept coherent by PostgreSQL notifications.

Every user's app opens the catalogue, and its statement (two joins, a sort on lower(name)) run
at thousands of requests per second would alone need more than a core of the database. The
catalogue changes only when an admin writes offers or merchants, so each rendered page is kept
until the next change:

- a trigger on `offers` and `merchants` (migration 2) sends NOTIFY `catalogue_changed` when a
  writing transaction commits, from any instance, the ops CLI or psql; every instance LISTENs on
  a connection of its own and drops its pages when one arrives;
- the instance that wrote drops its pages itself before it answers (`invalidate`), so a client
  reads its own write at once; other instances follow within the notification's delivery time;
- pages are keyed by the UTC date, so an offer leaves the list when its window ends;
- while the listening connection is down, nothing is cached (every request reads the database),
  and pages start empty when it is back: a missed notification can never leave a stale page;
- a load that overlapped a change is served but not kept (`_generation`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import asyncpg
from loguru import logger

CHANNEL = "catalogue_changed"
MAX_PAGES = 512
RECONNECT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5.0


class CataloguePages:
    def __init__(self, connect_params: dict[str, Any]) -> None:
        self._connect_params = connect_params
        self._pages: dict[tuple[date, int, int], bytes] = {}
        self._generation = 0
        self._connection: asyncpg.Connection | None = None
        self._reconnect: asyncio.Task | None = None
        self._closed = False
        self.listens = 0  # how many times listening (re)started
        self._outage_logged = False

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def start(self) -> None:
        """Listen now if the database answers; otherwise keep trying in the background."""
        if not await self._listen():
            self._reconnect = asyncio.ensure_future(self._keep_reconnecting())

    async def close(self) -> None:
        self._closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            await connection.close()

    def invalidate(self, *_notification: Any) -> None:
        self._generation += 1
        self._pages.clear()

    async def page(self, today: date, offset: int, limit: int, render: Callable[[], Awaitable[bytes]]) -> bytes:
        if not self.listening:
            return await render()
        key = (today, offset, limit)
        body = self._pages.get(key)
        if body is not None:
            return body
        generation = self._generation
        body = await render()
        if generation == self._generation and self.listening:
            if len(self._pages) >= MAX_PAGES:
                self._pages.clear()
            self._pages[key] = body
        return body

    async def _listen(self) -> bool:
        try:
            connection = await asyncpg.connect(
                **self._connect_params,
                timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings={"application_name": "clicknback-catalogue"},
            )
            await connection.add_listener(CHANNEL, self.invalidate)
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            if not self._outage_logged:  # once per outage, not once per retry
                self._outage_logged = True
                logger.bind(event="catalogue.listen_failed", reason=type(error).__name__).warning(
                    "catalogue cache off until the database answers"
                )
            return False
        self._outage_logged = False
        connection.add_termination_listener(self._lost)
        self.invalidate()  # notifications may have been missed while not listening
        self._connection = connection
        self.listens += 1
        return True

    def _lost(self, _connection: asyncpg.Connection) -> None:
        self._connection = None
        self.invalidate()
        if not self._closed:
            logger.bind(event="catalogue.listen_lost").warning("catalogue cache off: listening connection lost")
            self._reconnect = asyncio.ensure_future(self._keep_reconnecting())

    async def _keep_reconnecting(self) -> None:
        while not self._closed and not await self._listen():
            await asyncio.sleep(RECONNECT_SECONDS)

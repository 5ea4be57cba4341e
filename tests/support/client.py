"""An in-process HTTP client for the Sanic app: httpx over ASGI, with the app's listeners run once.

sanic-testing's ASGI client runs the start-up and shutdown listeners around every request,
which would open and close the database pool each time; this one runs them once per test.
"""

from __future__ import annotations

from typing import Any

import httpx
from sanic import Sanic


class AppClient:
    def __init__(self, app: Sanic) -> None:
        Sanic.test_mode = True  # several apps per process
        # Touch-up rewrites Sanic's request handler without the signals nobody listens to: the same
        # behaviour, faster under load, ~90 ms to build per app. The real server processes of the
        # e2e tests keep it; in-process tests build an app each.
        app.config.TOUCHUP = False
        self.app = app
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)), base_url="http://testserver"
        )

    async def start(self) -> None:
        self.app.asgi = True
        await self.app._startup()  # noqa: SLF001 - the ASGI lifespan path, run by hand
        await self.app._server_event("init", "before")  # noqa: SLF001
        await self.app._server_event("init", "after")  # noqa: SLF001

    async def stop(self) -> None:
        await self.http.aclose()
        await self.app._server_event("shutdown", "before")  # noqa: SLF001
        await self.app._server_event("shutdown", "after")  # noqa: SLF001

    async def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, token, **kwargs)

    async def post(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, token, **kwargs)

    async def put(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, token, **kwargs)

    async def patch(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, token, **kwargs)

    async def delete(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, token, **kwargs)

"""The Sanic application factory."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import time
from datetime import UTC, datetime
from itertools import count
from typing import Any

from loguru import logger
from sanic import Request, Sanic
from sanic.exceptions import NotFound, PayloadTooLarge

from server import cors, db, errors, openapi
from server.auth import passwords
from server.config import Settings, load_settings
from server.health.probe import ReadinessProbe
from server.http import TrustedProxies, client_address
from server.jobs.runner import run_forever
from server.logs import ACCESS_LOG, REQUEST_ID
from server.offers.catalogue import CataloguePages
from server.routes import BLUEPRINTS

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_app_numbers = count()


class RandomUuids:
    """UUID v4 strings, as uuid.uuid4() makes them, for a fraction of its cost: random bytes are
    read 256 ids at a time, and the string is formatted directly instead of through a UUID object. One per request that brings no usable X-Request-ID."""

    BATCH = 256

    def __init__(self) -> None:
        self._random = b""
        self._at = 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._random):
            self._random, at = os.urandom(16 * self.BATCH), 0
        self._at = at + 16
        digits = self._random[at : at + 16].hex()
        # Version nibble 4; variant bits 10 (the first hex digit of the fourth group is 8-b).
        return (
            f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{'89ab'[int(digits[16], 16) & 3]}{digits[17:20]}-"
            f"{digits[20:]}"
        )


_new_request_id = RandomUuids().next


def _request_id(request: Request) -> str:
    inbound = request.headers.get("x-request-id")
    if inbound and REQUEST_ID_PATTERN.match(inbound):
        return inbound
    return _new_request_id()  # API.md §1.4


async def on_request(request: Request) -> None:
    ctx = request.ctx  # a property: read once (both middlewares run on every request)
    ctx.started = time.perf_counter()
    ctx.request_id = request_id = _request_id(request)
    ctx.user_id = None
    REQUEST_ID.set(request_id)
    # Sanic's own server refuses oversized bodies while reading them; this covers ASGI servers,
    # which hand the body over whole. Sanic also runs this middleware for a request no route
    # matched, and §1.7 puts 404/405 before 413: without a route, the routing error stands.
    if request.route is None:
        return
    if request.path.endswith("//"):
        # API.md §1.1 allows one trailing slash; Sanic's non-strict matching would take any number.
        raise NotFound("No route matches.")
    limit = request.app.config["REQUEST_MAX_SIZE"]
    declared = request.headers.get("content-length", "")
    if (declared.isdigit() and int(declared) > limit) or len(request.body or b"") > limit:
        raise PayloadTooLarge("Request body exceeds the limit.")


def _close_after_the_answer(request: Request) -> None:
    stream = request.stream
    if stream is not None and hasattr(stream, "keep_alive"):  # Sanic's HTTP/1.1; ASGI servers have their own
        stream.keep_alive = False


# The most of an oversized body an instance reads and discards before it closes the connection:
# nginx's own client_max_body_size (deploy/templates/nginx.conf.tmpl), so nothing nginx forwards
# is cut off. A larger declared body is dropped at once, as Sanic does.
DISCARD_MAX_BYTES = 16 * 1024 * 1024


def _close_after_an_unread_oversized_body(request: Request) -> None:
    """A request declaring a body over the limit that was answered without reading it (the 413, or
    a 404 or 405 that comes before it, §1.7). Its header said keep-alive, so say `Connection:
    close`: a client (nginx's upstream keepalive among them) must not send its next request into a
    closing socket. And read the rest of the body before closing: a connection closed while its
    client still writes fails that write, and nginx, sending the body it buffered, then answers
    502 instead of relaying our 413 (it retries, and every instance does the same)."""
    declared = request.headers.get("content-length", "")
    if not (declared.isdigit() and int(declared) > request.app.config["REQUEST_MAX_SIZE"]):
        return
    _close_after_the_answer(request)
    # Sanic's HTTP/1.1 stream and protocol (ASGI servers have neither attribute).
    stream: Any = request.stream
    protocol: Any = request.transport.get_protocol() if request.transport is not None else None
    if int(declared) <= DISCARD_MAX_BYTES and hasattr(stream, "request_max_size") and protocol is not None:
        # Sanic reads what is left of a body after the answer, up to both of these limits.
        stream.request_max_size = protocol.request_max_size = int(declared)


def _close_while_draining(request: Request) -> None:
    """After a stop signal, every answer closes its connection (server/drain.py): a kept connection
    gets readiness's 503, then goes, and the drain waits for in-flight requests only."""
    if request.app.ctx.draining:
        _close_after_the_answer(request)


async def on_response(request: Request, response) -> None:
    ctx = request.ctx
    _close_after_an_unread_oversized_body(request)
    _close_while_draining(request)
    request_id = getattr(ctx, "request_id", None) or _request_id(request)
    response.headers["X-Request-ID"] = request_id
    started = getattr(ctx, "started", None)
    duration_ms = round((time.perf_counter() - started) * 1000, 3) if started else None
    request.app.ctx.cors.add_headers(request, response)
    route = request.route.path if request.route else None
    method, path, status = request.method, request.path, response.status
    ACCESS_LOG.write(
        f"{method} {path} {status}",
        {
            "request_id": request_id,
            "method": method,
            "route": ("/" + route.lstrip("/")) if route is not None else None,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "user_id": getattr(ctx, "user_id", None),
            "client": client_address(request),
        },
    )


# The requests in flight alone (dozens of tracked objects each, dozens at a time) outgrow Python's
# default young-generation threshold of 700: under load it would collect several times a second
# and promote in-flight objects into generation 1, whose passes stall every request in flight on
# the instance. Cyclic garbage here is rare (a few objects per closed connection).
YOUNG_GENERATION_THRESHOLD = 50_000


async def tune_garbage_collector(app: Sanic) -> None:
    """For a serving process (server/__main__.py), once started.

    Everything loaded so far lives as long as the process: frozen, out of the collector's reach, a
    full collection costs what requests allocate, not a walk over every start-up object.
    No collection first: that walk, once, would free only a few unreachable start-up objects.
    Not for test processes, which build many apps: their frozen garbage would stay."""
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def create_app(settings: Settings | None = None, name: str | None = None) -> Sanic:
    settings = settings or load_settings()
    app = Sanic(name or f"clicknback_{next(_app_numbers)}", configure_logging=False, strict_slashes=False)
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.graceful_shutdown_seconds
    app.config.ACCESS_LOG = False
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.NOISY_EXCEPTIONS = False
    app.config.MOTD = False
    # No sanic-ext (docs/adr/0001): it slows every start (so every rollback) and every request;
    # OpenAPI and CORS live in server/openapi.py and server/cors.py. Never let Sanic load it
    # implicitly either.
    app.config.AUTO_EXTEND = False
    app.ctx.settings = settings
    app.ctx.draining = False
    app.ctx.started_at = datetime.now(UTC)
    app.ctx.cors = cors.CorsPolicy(settings.cors_allowed_origins)
    app.ctx.trusted_proxies = TrustedProxies(settings.trusted_proxies)

    for blueprint in [*BLUEPRINTS, openapi.bp]:
        app.blueprint(blueprint)
    cors.add_options_and_head_routes(app)
    app.register_middleware(on_request, "request")
    app.register_middleware(on_response, "response")
    errors.install(app)

    @app.before_server_start
    async def open_resources(app: Sanic) -> None:
        passwords.configure(
            passwords.HashParameters(
                settings.password_hash_memory_kib, settings.password_hash_iterations, settings.password_hash_parallelism
            ),
            settings.password_hash_threads,
            settings.password_hash_queue,
        )
        await db.init_db(
            settings.database_url,
            settings.db_pool_min_size,
            settings.db_pool_max_size,
            settings.slow_query_ms,
            wait_seconds=settings.db_startup_wait_seconds,
            bounds=db.WaitBounds(
                settings.db_pool_timeout_seconds, settings.db_lock_timeout_ms, settings.db_statement_timeout_ms
            ),
        )
        app.ctx.probe = ReadinessProbe(settings.database_url)
        app.ctx.catalogue = CataloguePages(db.parse_database_url(settings.database_url))
        await app.ctx.catalogue.start()
        app.ctx.job_stop = asyncio.Event()
        app.ctx.job_task = None
        if settings.purchase_job_enabled:
            app.ctx.job_task = asyncio.ensure_future(run_forever(settings, app.ctx.job_stop))
        logger.bind(event="app.start", settings=settings.safe_summary()).info("service started")

    @app.before_server_stop
    async def start_draining(app: Sanic) -> None:
        # From the stop signal on, readiness answers 503 while in-flight requests finish.
        app.ctx.draining = True
        app.ctx.job_stop.set()
        logger.bind(event="app.stop").info("draining: readiness now 503")

    @app.after_server_stop
    async def close_resources(app: Sanic) -> None:
        if app.ctx.job_task is not None:
            try:
                await asyncio.wait_for(app.ctx.job_task, timeout=settings.graceful_shutdown_seconds)
            except (TimeoutError, asyncio.CancelledError):
                app.ctx.job_task.cancel()
        await app.ctx.probe.close()
        await app.ctx.catalogue.close()
        await db.close_db()
        ACCESS_LOG.flush()
        logger.bind(event="app.stop").info("service stopped")

    return app

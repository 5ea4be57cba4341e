"""The smallest app on the service's stack, for bench/stack_ceiling.py: what this machine gives at best.

    python -m bench.minimal_app --port N [--host 127.0.0.1] [--database-url URL]   (or $DATABASE_URL)

One instance runs exactly as production runs one of ours (server/__main__.py and server/app.py):
Sanic 25.12, `single_process=True`, `access_log=False`, `motd=False`, `configure_logging=False`,
Sanic's default event loop (uvloop when installed, as in production), `KEEP_ALIVE_TIMEOUT` 75 s,
no sanic-ext, and an asyncpg pool of min 2, max 20 (production's DB_POOL_MIN_SIZE/MAX_SIZE defaults;
the same environment variables change them) with
production's no-op release reset (server/db.py `_keep_session`: no round trip per release). What it
leaves out is everything our service adds per request: JWT verification, request/response
middleware, the JSON access log line, error handlers, query instrumentation.

Routes:
  GET /plain         {"status": "alive"} through orjson, no I/O: the framework's floor.
  GET /row           one users row by primary key (an id read once at start-up) through
                     pool.acquire() + fetchrow, as JSON: the floor of any authenticated request.
  GET /health/ready  the same body as /plain; only for the bench's and nginx front's readiness
                     polls (bench/api_bench.start_servers, bench/front.NginxFront), never measured.

The users table is the one bench/stack_ceiling.py creates (shaped like ours). Once serving, the
instance prints one line `minimal app ready on PORT: loop=..., user=...` to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from urllib.parse import unquote, urlparse

import asyncpg
import orjson
from sanic import Sanic
from sanic.response import HTTPResponse

from server.config import database_address  # stdlib only: the minimal app stays free of the service

JSON_CONTENT_TYPE = "application/json; charset=utf-8"  # as server/http.py
# Production's DB_POOL_MIN_SIZE / DB_POOL_MAX_SIZE defaults (server/config.py); the same variables
# override them here, as they do for the service (bench/stack_ceiling.py --pool-max sets the second).
POOL_MIN_SIZE = 2
POOL_MAX_SIZE = 20
ROW_SQL = "SELECT id, email, role, active, created_at FROM users WHERE id = $1"
FIXED_ID_SQL = "SELECT id FROM users ORDER BY id LIMIT 1"
PLAIN_BODY = {"status": "alive"}


def connect_kwargs(database_url: str) -> dict:
    """asyncpg connection arguments from a postgres:// URL (the same fields server.db.parse_database_url reads)."""
    parsed = urlparse(database_url)
    host, port = database_address(database_url)
    return {
        "host": host,
        "port": port,
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password) if parsed.password else None,
        "database": parsed.path.lstrip("/") or "postgres",
    }


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Production's pool release hook (server/db.py _keep_session): skip asyncpg's per-release reset."""


def json_response(payload: dict) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(payload), content_type=JSON_CONTENT_TYPE)


def pool_sizes(environ: dict[str, str]) -> tuple[int, int]:
    """(min, max) pool size: production's defaults unless DB_POOL_MIN_SIZE / DB_POOL_MAX_SIZE say otherwise."""
    min_size = int(environ.get("DB_POOL_MIN_SIZE", POOL_MIN_SIZE))
    max_size = int(environ.get("DB_POOL_MAX_SIZE", POOL_MAX_SIZE))
    if not 0 <= min_size <= max_size or max_size < 1:
        raise ValueError(f"pool sizes must satisfy 0 <= min <= max, max >= 1: got {min_size}, {max_size}")
    return min_size, max_size


def create_app(
    database_url: str, name: str = "minimal", pool_min: int = POOL_MIN_SIZE, pool_max: int = POOL_MAX_SIZE
) -> Sanic:
    app = Sanic(name, configure_logging=False)
    app.config.ACCESS_LOG = False
    app.config.MOTD = False
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.AUTO_EXTEND = False

    @app.before_server_start
    async def open_pool(app: Sanic) -> None:
        app.ctx.pool = await asyncpg.create_pool(
            **connect_kwargs(database_url), min_size=pool_min, max_size=pool_max, reset=_no_reset
        )
        async with app.ctx.pool.acquire() as connection:
            app.ctx.user_id = await connection.fetchval(FIXED_ID_SQL)
        if app.ctx.user_id is None:
            raise RuntimeError("the users table is empty: bench/stack_ceiling.py seeds it")

    @app.after_server_start
    async def announce(app: Sanic) -> None:
        loop = type(asyncio.get_running_loop())
        print(
            f"minimal app ready on {app.ctx.port}: loop={loop.__module__}.{loop.__qualname__}, "
            f"pool={pool_min}..{pool_max}, user={app.ctx.user_id}",
            flush=True,
        )

    @app.after_server_stop
    async def close_pool(app: Sanic) -> None:
        await app.ctx.pool.close()

    @app.get("/plain")
    async def plain(request):
        return json_response(PLAIN_BODY)

    @app.get("/health/ready")
    async def ready(request):
        return json_response(PLAIN_BODY)

    @app.get("/row")
    async def row(request):
        async with request.app.ctx.pool.acquire() as connection:
            record = await connection.fetchrow(ROW_SQL, request.app.ctx.user_id)
        # asyncpg's UUID is a subclass orjson does not serialise; the service renders ids as strings too.
        return json_response(
            {
                "id": str(record["id"]),
                "email": record["email"],
                "role": record["role"],
                "active": record["active"],
                "created_at": record["created_at"],
            }
        )

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.minimal_app", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind (with --unix: the slot it names)")
    parser.add_argument(
        "--unix",
        metavar="PATH",
        default="",
        help="listen on this Unix socket instead, as the service's instances do in production",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="postgres:// URL of the seeded database (default: $DATABASE_URL)",
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or DATABASE_URL is required")
    try:
        pool_min, pool_max = pool_sizes(dict(os.environ))
    except ValueError as error:
        parser.error(str(error))
    app = create_app(args.database_url, pool_min=pool_min, pool_max=pool_max)
    app.ctx.port = args.port
    listen = {"unix": args.unix} if args.unix else {"host": args.host, "port": args.port}
    app.run(**listen, single_process=True, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Admin-only diagnostics (API.md §3.1): what is deployed, and how the database pool is doing."""

import os
import platform
from datetime import UTC, datetime

import sanic
from sanic import Blueprint, Request

from server import db
from server.apidoc import TIMESTAMP, describe, nullable, obj
from server.db_migrations import code_head
from server.endpoint import Call, endpoint
from server.http import json_response
from server.version import release_info

bp = Blueprint("debug", url_prefix="/debug")

TABLES = [
    "users",
    "merchants",
    "offers",
    "purchases",
    "cashback_transactions",
    "wallets",
    "payouts",
    "audit_logs",
    "feature_flags",
    "refresh_tokens",
    "login_attempts",
]


VERSION_OUT = obj(
    {
        "version": {"type": "string"},
        "commit": {"type": "string"},
        "deployed_at": nullable(TIMESTAMP),
        "started_at": TIMESTAMP,
        "migration_head": {"type": "string"},
        "python": {"type": "string"},
        "sanic": {"type": "string"},
    }
)
STATS_OUT = obj(
    {
        "pool": {"type": "object"},
        "queries": {"type": "object"},
        "database": {"type": "object"},
        "tables": {"type": "object"},
        "scope": {"type": "string"},
        "pid": {"type": "integer"},
        "checked_at": TIMESTAMP,
    }
)


@bp.get("/version")
@describe(
    "What this process runs (admin)",
    "debug",
    200,
    VERSION_OUT,
    [401, 403],
    description="The deployed tag and commit, when it was deployed and started, its migration head and versions.",
)
@endpoint(auth="admin")
async def version(request: Request, call: Call):
    info = release_info()
    return json_response(
        {
            "version": info.version,
            "commit": info.commit,
            "deployed_at": info.deployed_at,
            "started_at": request.app.ctx.started_at,
            "migration_head": code_head(),
            "python": platform.python_version(),
            "sanic": sanic.__version__,
        }
    )


@bp.get("/database-stats")
@describe(
    "Pool, query counters and database size for this process (admin)",
    "debug",
    200,
    STATS_OUT,
    [401, 403],
    description="Counters are this process's since it started (`scope: process`); row counts are estimates.",
)
@endpoint(auth="admin")
async def database_stats(request: Request, call: Call):
    pool = db.pool()
    async with db.connection() as conn:
        # Raw: pg_database_size() is a system function, no queryset form (no model reads the catalogs).
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        # Raw: pg_stat_activity is a system catalog view, no queryset form (no model reads the catalogs).
        states = await conn.fetch(
            "SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM pg_stat_activity "
            "WHERE datname = current_database() GROUP BY 1 ORDER BY 1"
        )
        # Raw: pg_stat_user_tables is a system catalog view, no queryset form (no model reads the catalogs).
        tables = await conn.fetch(
            "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname = ANY($1::text[]) ORDER BY relname",
            TABLES,
        )
    return json_response(
        {
            "pool": {
                "min_size": pool.get_min_size(),
                "max_size": pool.get_max_size(),
                "size": pool.get_size(),
                "idle": pool.get_idle_size(),
            },
            "queries": db.QUERY_STATS.snapshot(),
            "database": {"size_bytes": size, "connections": {row["state"]: row["n"] for row in states}},
            "tables": {row["relname"]: row["n_live_tup"] for row in tables},
            "scope": "process",
            "pid": os.getpid(),
            "checked_at": datetime.now(UTC),
        }
    )

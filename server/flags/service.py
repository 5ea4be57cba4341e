"""Feature flags: resolution (API.md §4.8: scoped row -> global row -> default true, fail-open) and the
admin API of §3.8 (upsert, delete, evaluate, list), each change audited in its own transaction."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
from loguru import logger

from server import db
from server.audit import service as audit
from server.errors import ApiError, violation
from server.http import page
from server.pagination import Filters, fetch_page

RESOLVE_SQL = """
SELECT enabled, scope_type FROM feature_flags
WHERE key = $1 AND (
    (scope_type = $2 AND scope_id = $3::uuid AND $2 <> 'global')
    OR scope_type = 'global'
)
ORDER BY (scope_type = 'global')
LIMIT 1
"""


async def resolve(
    conn: asyncpg.Connection, key: str, scope_type: str = "global", scope_id: str | None = None
) -> tuple[bool, str]:
    """(enabled, source) where source is "scoped", "global" or "default". Flags are never cached."""
    row = await conn.fetchrow(RESOLVE_SQL, key, scope_type, scope_id)
    if row is None:
        return True, "default"
    return row["enabled"], "global" if row["scope_type"] == "global" else "scoped"


# -- the admin API (API.md §3.8) -------------------------------------------------------------

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SCOPE_TYPES = ("global", "merchant", "user")
FLAG_COLUMNS = "id, key, enabled, scope_type, scope_id, description, created_at, updated_at"
SAME_SCOPE = "key = $1 AND scope_type = $2 AND scope_id IS NOT DISTINCT FROM $3::uuid"
UPSERT_SQL = f"""
INSERT INTO feature_flags (id, key, enabled, scope_type, scope_id, description)
VALUES ($4, $1, $5, $2, $3::uuid, $6)
ON CONFLICT (key, scope_type, coalesce(scope_id, '00000000-0000-0000-0000-000000000000'::uuid))
DO UPDATE SET enabled = EXCLUDED.enabled,
              description = coalesce(EXCLUDED.description, feature_flags.description),
              updated_at = now()
RETURNING {FLAG_COLUMNS}, (xmax = 0) AS created
"""
UPSERT_ATTEMPTS = 3


def key_violation(key: str | None) -> dict[str, str] | None:
    if key is None or not 1 <= len(key) <= 100:
        return violation("key", "Key must be 1 to 100 characters long.")
    if not KEY_PATTERN.match(key):
        return violation("key", "Key must match ^[a-z][a-z0-9_]*$.")
    return None


def global_scope_violation(scope_type: str | None, scope_id: str | None) -> dict[str, str] | None:
    if scope_type == "global" and scope_id is not None:
        return violation("scope_id", "scope_id must be null when scope_type is 'global'.")
    return None


def require_scope_id(scope_type: str, scope_id: str | None) -> None:
    if scope_type != "global" and scope_id is None:
        raise ApiError(
            422,
            "FEATURE_FLAG_SCOPE_ID_REQUIRED",
            f"scope_id is required when scope_type is '{scope_type}'.",
            {"scope_type": scope_type},
        )


def flag_out(row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "key": row["key"],
        "enabled": row["enabled"],
        "scope_type": row["scope_type"],
        "scope_id": str(row["scope_id"]) if row["scope_id"] is not None else None,
        "description": row["description"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class _UpsertRaced(Exception):
    """The row appeared between our read and our upsert; retry to learn its previous value."""


async def upsert(
    admin_id: str, key: str, scope_type: str, scope_id: str | None, enabled: bool, description: str | None
) -> dict[str, Any]:
    for _ in range(UPSERT_ATTEMPTS):
        try:
            async with db.transaction() as conn:
                previous = await conn.fetchval(
                    f"SELECT enabled FROM feature_flags WHERE {SAME_SCOPE} FOR UPDATE", key, scope_type, scope_id
                )
                row = await conn.fetchrow(UPSERT_SQL, key, scope_type, scope_id, uuid.uuid4(), enabled, description)
                if not row["created"] and previous is None:
                    raise _UpsertRaced()
                await audit.record(
                    conn,
                    actor_type="admin",
                    actor_id=admin_id,
                    action="FEATURE_FLAG_SET",
                    resource_type="feature_flag",
                    resource_id=row["id"],
                    details={
                        "key": key,
                        "scope_type": scope_type,
                        "scope_id": scope_id,
                        "enabled": enabled,
                        "previous_enabled": None if row["created"] else previous,
                    },
                )
            return flag_out(row)
        except _UpsertRaced:
            logger.bind(event="flags.upsert_retry", key=key, scope_type=scope_type).info("flag upsert raced; retrying")
    raise RuntimeError("feature flag upsert kept racing")


async def delete(admin_id: str, key: str, scope_type: str, scope_id: str | None) -> None:
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"DELETE FROM feature_flags WHERE {SAME_SCOPE} RETURNING id, enabled", key, scope_type, scope_id
        )
        if row is None:
            raise ApiError(
                404,
                "FEATURE_FLAG_NOT_FOUND",
                f"Feature flag '{key}' not found for scope '{scope_type}'.",
                {"key": key, "scope_type": scope_type, "scope_id": scope_id},
            )
        await audit.record(
            conn,
            actor_type="admin",
            actor_id=admin_id,
            action="FEATURE_FLAG_DELETED",
            resource_type="feature_flag",
            resource_id=row["id"],
            details={"key": key, "scope_type": scope_type, "scope_id": scope_id, "enabled": row["enabled"]},
        )


async def evaluate(key: str, scope_type: str, scope_id: str | None) -> dict[str, Any]:
    async with db.connection() as conn:
        enabled, source = await resolve(conn, key, scope_type, scope_id)
    return {"key": key, "enabled": enabled, "source": source}


async def list_page(
    offset: int, limit: int, key: str | None, scope_type: str | None, scope_id: str | None
) -> dict[str, Any]:
    where = Filters()
    for column, value in (("key", key), ("scope_type", scope_type), ("scope_id", scope_id)):
        if value is not None:
            where.add(f"{column} = {{}}", value)
    rows, total = await fetch_page(
        source="feature_flags",
        columns=FLAG_COLUMNS,
        filters=where,
        order_by="created_at DESC, id DESC",
        offset=offset,
        limit=limit,
    )
    return page([flag_out(row) for row in rows], offset, limit, total)

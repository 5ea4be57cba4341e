"""Writing the audit log. Always called with the connection of the change's own transaction,
so the change and its audit row commit or roll back together (API.md §4.9)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson


async def record(
    conn: asyncpg.Connection,
    *,
    actor_type: str,
    actor_id: str | None,
    action: str,
    resource_type: str,
    resource_id: str,
    details: dict[str, Any],
) -> None:
    """Append one audit row. Money values in `details` must already be strings."""
    await conn.execute(
        "INSERT INTO audit_logs (id, actor_type, actor_id, action, resource_type, resource_id, outcome, details) "
        "VALUES ($1, $2, $3, $4, $5, $6, 'success', $7::jsonb)",
        uuid.uuid4(), actor_type, actor_id, action, resource_type, resource_id,
        orjson.dumps(details).decode(),
    )

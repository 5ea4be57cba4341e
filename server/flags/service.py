"""Feature-flag resolution (API.md §4.8): scoped row -> global row -> default true (fail-open)."""

from __future__ import annotations

import asyncpg

RESOLVE_SQL = """
SELECT enabled, scope_type FROM feature_flags
WHERE key = $1 AND (
    (scope_type = $2 AND scope_id = $3::uuid AND $2 <> 'global')
    OR scope_type = 'global'
)
ORDER BY (scope_type = 'global')
LIMIT 1
"""


async def resolve(conn: asyncpg.Connection, key: str, scope_type: str = "global",
                  scope_id: str | None = None) -> tuple[bool, str]:
    """(enabled, source) where source is "scoped", "global" or "default". Flags are never cached."""
    row = await conn.fetchrow(RESOLVE_SQL, key, scope_type, scope_id)
    if row is None:
        return True, "default"
    return row["enabled"], "global" if row["scope_type"] == "global" else "scoped"

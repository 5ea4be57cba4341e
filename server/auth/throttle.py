"""Login throttling in PostgreSQL (API.md §2.4): failures per normalised email in a window.

Counted in the database so every worker and host shares the count. The authoritative check and
the recording of a failure run in one transaction under an advisory lock keyed by the email.
"""

from __future__ import annotations

import math

import asyncpg

COUNT_SQL = """
SELECT count(*) AS failures,
       EXTRACT(EPOCH FROM (min(attempted_at) + make_interval(mins => $2) - now())) AS wait_seconds
FROM login_attempts
WHERE email = $1 AND attempted_at > now() - make_interval(mins => $2)
"""


async def retry_after(conn: asyncpg.Connection, email: str, max_failures: int, window_minutes: int) -> int | None:
    """Seconds until the oldest counted failure leaves the window, when the email is throttled."""
    row = await conn.fetchrow(COUNT_SQL, email, window_minutes)
    if row["failures"] < max_failures:
        return None
    return max(1, math.ceil(float(row["wait_seconds"] or 1)))


async def lock_email(conn: asyncpg.Connection, email: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"login:{email}")


async def record_failure(conn: asyncpg.Connection, email: str, ip: str | None) -> None:
    await conn.execute("INSERT INTO login_attempts (email, ip) VALUES ($1, $2::text::inet)", email, ip or None)


async def clear_failures(conn: asyncpg.Connection, email: str) -> None:
    await conn.execute("DELETE FROM login_attempts WHERE email = $1", email)


async def purge_expired(conn: asyncpg.Connection, window_minutes: int) -> None:
    await conn.execute(
        "DELETE FROM login_attempts WHERE attempted_at < now() - make_interval(mins => $1)", window_minutes
    )

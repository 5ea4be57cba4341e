"""Login throttling in PostgreSQL (API.md §2.4): failures per normalised email in a window.

Counted in the database so every worker and host shares the count. The authoritative check and
the recording of a failure run in one transaction under an advisory lock keyed by the email.
"""

from __future__ import annotations

import math

from tortoise.backends.base.client import BaseDBAsyncClient

from server.auth.models import LoginAttempt

# Raw SQL kept for bench row login: the window is measured on the database clock that stamps
# attempted_at, and the count and the oldest failure come back in one round trip.
COUNT_SQL = """
SELECT count(*) AS failures,
       EXTRACT(EPOCH FROM (min(attempted_at) + make_interval(mins => $2) - now())) AS wait_seconds
FROM login_attempts
WHERE email = $1 AND attempted_at > now() - make_interval(mins => $2)
"""


async def retry_after(client: BaseDBAsyncClient, email: str, max_failures: int, window_minutes: int) -> int | None:
    """Seconds until the oldest counted failure leaves the window, when the email is throttled."""
    _, rows = await client.execute_query(COUNT_SQL, [email, window_minutes])
    row = rows[0]
    if row["failures"] < max_failures:
        return None
    return max(1, math.ceil(float(row["wait_seconds"] or 1)))


async def lock_email(tx: BaseDBAsyncClient, email: str) -> None:
    # Raw SQL kept for bench row login: an advisory lock has no queryset form, and an unknown email has no row to lock.
    await tx.execute_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [f"login:{email}"])


async def record_failure(tx: BaseDBAsyncClient, email: str, ip: str | None) -> None:
    await LoginAttempt.create(using_db=tx, email=email, ip=ip or None)


async def clear_failures(tx: BaseDBAsyncClient, email: str) -> None:
    await LoginAttempt.filter(email=email).using_db(tx).delete()

"""Registration and profile reads."""

from __future__ import annotations

import uuid

import asyncpg

from server import db
from server.auth import passwords
from server.errors import ApiError, violation
from server.wallets import balances

USER_COLUMNS = "id, email, role, active, created_at"


def user_out(row) -> dict:
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "role": row["role"],
        "active": row["active"],
        "created_at": row["created_at"],
    }


def _email_taken(email: str) -> ApiError:
    return ApiError(409, "EMAIL_ALREADY_REGISTERED", f"Email '{email}' is already registered.", {"email": email})


async def register(email: str, password: str) -> dict:
    reason = passwords.complexity_failure(password)
    if reason is not None:
        raise ApiError(
            400,
            "PASSWORD_NOT_COMPLEX_ENOUGH",
            "Password does not meet complexity requirements.",
            {"violations": [violation("password", reason)]},
        )
    if await db.fetchval("SELECT 1 FROM users WHERE email = $1", email):
        raise _email_taken(email)
    hashed = await passwords.hash_password(password)
    try:
        async with db.transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO users (id, email, hashed_password) VALUES ($1, $2, $3) RETURNING {USER_COLUMNS}",
                uuid.uuid4(),
                email,
                hashed,
            )
            await balances.open_wallet(conn, row["id"])
    except asyncpg.UniqueViolationError:
        raise _email_taken(email) from None
    return user_out(row)

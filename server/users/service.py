"""Registration and profile reads."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.auth import passwords
from server.errors import ApiError, violation
from server.users.models import User
from server.wallets import balances

USER_FIELDS = ("id", "email", "role", "active", "created_at")


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
    if await User.filter(email=email).exists():
        raise _email_taken(email)
    hashed = await passwords.hash_password(password)
    try:
        async with in_transaction() as tx:
            user = await User.create(using_db=tx, email=email, hashed_password=hashed)
            await balances.open_wallet(tx, user.id)
    except IntegrityError:  # uq_users_email: a concurrent registration of the same email won
        raise _email_taken(email) from None
    return user_out({name: getattr(user, name) for name in USER_FIELDS})

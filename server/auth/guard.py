"""Who is calling: verify the bearer token and reload the user from the database (API.md §2.2)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from loguru import logger
from sanic import Request

from server import db
from server.auth.tokens import TokenError, decode
from server.errors import ApiError, forbidden
from server.http import client_address

WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}
INVALID_TOKEN_MESSAGE = "Invalid or missing access token."


@dataclass(frozen=True)
class CurrentUser:
    id: str
    email: str
    role: str
    active: bool
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def auth_failure(
    request: Request,
    reason: str,
    code: str = "INVALID_TOKEN",
    message: str = INVALID_TOKEN_MESSAGE,
    details: dict | None = None,
) -> ApiError:
    """Log the failure (a reason code, never the credential) and build the 401."""
    logger.bind(event="auth.failure", reason=reason, path=request.path, client=client_address(request)).warning(
        "authentication failed: {}", reason
    )
    return ApiError(401, code, message, details or {}, WWW_AUTHENTICATE)


CALLER_COLUMNS = "u.id, u.email, u.role, u.active, u.created_at"
_CALLERS = "WHERE u.id = ANY($1::uuid[])"  # one statement serves every request of a loop pass
_lookups: dict[str, db.RowsByKey] = {}


# Raw SQL kept for bench row users_me (every authenticated request): one batched statement per loop pass.
def caller_sql(about_caller: str | None = None) -> str:
    """The callers' rows, plus `about_caller` (a subquery over `u.id`, e.g. the caller's wallet)
    read in the same statement: a hot endpoint then costs one round trip, not two."""
    if about_caller is None:
        return f"SELECT {CALLER_COLUMNS} FROM users u {_CALLERS}"
    return (
        f"SELECT {CALLER_COLUMNS}, about.* FROM users u LEFT JOIN LATERAL ({about_caller}) AS about ON TRUE {_CALLERS}"
    )


def caller_lookup(about_caller: str | None = None) -> db.RowsByKey:
    """The lookup of `caller_sql(about_caller)`, shared by every endpoint that reads the same columns,
    so their requests share statements too."""
    sql = caller_sql(about_caller)
    if sql not in _lookups:
        _lookups[sql] = db.RowsByKey(sql)
    return _lookups[sql]


async def authenticate(request: Request, lookup: db.RowsByKey | None = None) -> tuple[CurrentUser, asyncpg.Record]:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise auth_failure(request, "missing_or_not_bearer")
    try:
        claims = decode(request.app.ctx.settings.oauth_hash_key, token.strip(), "access")
        user_id = str(uuid.UUID(claims["user_id"]))
    except TokenError as error:
        if error.expired:
            raise auth_failure(
                request, "expired", "EXPIRED_TOKEN", "Access token has expired. Please refresh your token."
            ) from None
        raise auth_failure(request, error.reason) from None
    except ValueError:
        raise auth_failure(request, "bad_user_id") from None
    row = await (lookup or caller_lookup()).fetchrow(user_id)
    if row is None:
        raise auth_failure(request, "unknown_user")
    if not row["active"]:
        raise auth_failure(request, "user_inactive", "USER_INACTIVE", "User account is inactive.", {"user_id": user_id})
    user = CurrentUser(str(row["id"]), row["email"], row["role"], row["active"], row["created_at"])
    request.ctx.user_id = user.id
    return user, row


def require_admin(user: CurrentUser) -> None:
    if not user.is_admin:
        raise forbidden(details={"required_role": "admin"})

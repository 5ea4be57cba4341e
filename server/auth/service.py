"""Login and refresh-token rotation (API.md §3.2)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from loguru import logger
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import RawSQL
from tortoise.transactions import in_transaction

from server.auth import passwords, throttle
from server.auth.models import RefreshToken
from server.auth.tokens import IssuedRefreshToken, TokenError, decode, digest, issue_access, issue_refresh
from server.config import Settings
from server.errors import ApiError
from server.users.models import User

WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}
DB_NOW = RawSQL("now()")  # used_at and revoked_at on the database clock, as issued_at's default


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_dict(self) -> dict:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


def _too_many(seconds: int) -> ApiError:
    return ApiError(
        429,
        "TOO_MANY_ATTEMPTS",
        "Too many failed login attempts. Try again later.",
        {"retry_after_seconds": seconds},
        {"Retry-After": str(seconds)},
    )


def _invalid_credentials() -> ApiError:
    return ApiError(401, "INVALID_CREDENTIALS", "Invalid email or password.", {}, WWW_AUTHENTICATE)


def _auth_warning(reason: str, **context: object) -> None:
    logger.bind(event="auth.failure", reason=reason, **context).warning("authentication failed: {}", reason)


def _safe_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


async def _store_refresh(tx: BaseDBAsyncClient, settings: Settings, user_id: str) -> IssuedRefreshToken:
    issued = issue_refresh(settings.oauth_hash_key, user_id, settings.refresh_token_ttl_minutes)
    await RefreshToken.create(
        using_db=tx,
        user_id=user_id,
        token_hash=issued.token_hash,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
    )
    return issued


def _pair(settings: Settings, user_id: str, role: str, refresh: IssuedRefreshToken) -> TokenPair:
    access = issue_access(settings.oauth_hash_key, user_id, role, settings.access_token_ttl_minutes)
    return TokenPair(access, refresh.token, settings.access_token_ttl_minutes * 60)


async def login(settings: Settings, email: str, password: str, ip: str | None) -> TokenPair:
    ip = _safe_ip(ip)
    limit, window = settings.login_max_failures, settings.login_window_minutes
    # Cheap check first, so a throttled email never costs a password hash.
    wait = await throttle.retry_after(connections.get("default"), email, limit, window)
    user = await User.filter(email=email).first().values("id", "role", "active", "hashed_password")
    if wait is not None:
        _auth_warning("throttled", email_attempts="limit_reached")
        raise _too_many(wait)
    # Verified outside any transaction: no pooled connection waits on the hash.
    matches, needs_rehash = await passwords.verify_password(password, user["hashed_password"] if user else None)
    new_hash = await passwords.rehash_if_room(password) if matches and needs_rehash else None

    outcome: ApiError | TokenPair
    async with in_transaction() as tx:
        await throttle.lock_email(tx, email)
        wait = await throttle.retry_after(tx, email, limit, window)
        if wait is not None:
            outcome = _too_many(wait)
        elif not matches or user is None:  # an unknown email never matches; mypy cannot know that
            await throttle.record_failure(tx, email, ip)
            outcome = _invalid_credentials()
        elif not user["active"]:
            outcome = ApiError(
                401, "USER_INACTIVE", "User account is inactive.", {"user_id": str(user["id"])}, WWW_AUTHENTICATE
            )
        else:
            await throttle.clear_failures(tx, email)
            if new_hash is not None:
                await User.filter(id=user["id"]).using_db(tx).update(hashed_password=new_hash)
            refresh = await _store_refresh(tx, settings, str(user["id"]))
            outcome = _pair(settings, str(user["id"]), user["role"], refresh)
    if isinstance(outcome, ApiError):
        _auth_warning({401: "invalid_credentials", 429: "throttled"}.get(outcome.status, outcome.code.lower()))
        raise outcome
    return outcome


def _invalid_refresh() -> ApiError:
    return ApiError(401, "INVALID_REFRESH_TOKEN", "Invalid or expired refresh token.", {}, WWW_AUTHENTICATE)


def _revoked() -> ApiError:
    return ApiError(401, "TOKEN_REVOKED", "Refresh token has been revoked. Please log in again.", {}, WWW_AUTHENTICATE)


async def _revoke_all(user_id) -> None:
    """Reuse detected: revoke every live refresh token of the user, committed on its own."""
    await RefreshToken.filter(user_id=user_id, revoked_at__isnull=True).update(revoked_at=DB_NOW)


async def refresh(settings: Settings, token: str) -> TokenPair:
    try:
        decode(settings.oauth_hash_key, token, "refresh")
    except TokenError as error:
        _auth_warning(f"refresh_{error.reason}")
        raise _invalid_refresh() from None
    # expires_at was set from the issuing process's clock, as the token's own `exp` that decode() checked.
    row = await (
        RefreshToken.filter(token_hash=digest(token), expires_at__gt=datetime.now(UTC))
        .first()
        .values("id", "user_id", "used_at", "revoked_at")
    )
    if row is None:
        _auth_warning("refresh_unknown_or_expired")
        raise _invalid_refresh()
    if row["used_at"] is not None or row["revoked_at"] is not None:
        await _revoke_all(row["user_id"])
        _auth_warning("refresh_reuse", user_id=str(row["user_id"]))
        raise _revoked()
    user = await User.filter(id=row["user_id"]).first().values("id", "role", "active")
    if user is None:
        raise _invalid_refresh()
    if not user["active"]:
        raise ApiError(
            401, "USER_INACTIVE", "User account is inactive.", {"user_id": str(user["id"])}, WWW_AUTHENTICATE
        )
    async with in_transaction() as tx:
        consumed = (
            await RefreshToken.filter(id=row["id"], used_at__isnull=True, revoked_at__isnull=True)
            .using_db(tx)
            .update(used_at=DB_NOW)
        )
        pair = None
        if consumed == 1:
            issued = await _store_refresh(tx, settings, str(user["id"]))
            pair = _pair(settings, str(user["id"]), user["role"], issued)
    if pair is None:
        await _revoke_all(row["user_id"])
        _auth_warning("refresh_reuse_race", user_id=str(row["user_id"]))
        raise _revoked()
    return pair

"""JWT access and refresh tokens (API.md §2.1): HS256 only, typed, with required claims."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
ROLES = ("user", "admin")  # the users.role values (API.md §5)


class TokenError(Exception):
    """A token that cannot be accepted; `reason` is a log-safe code, `expired` picks the 401 code."""

    def __init__(self, reason: str, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True)
class IssuedRefreshToken:
    token: str
    token_hash: str
    issued_at: datetime
    expires_at: datetime


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_access(key: str, user_id: str, role: str, ttl_minutes: int, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims = {
        "user_id": user_id,
        "role": role,
        "token_type": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=ttl_minutes)).timestamp()),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def issue_refresh(key: str, user_id: str, ttl_minutes: int, now: datetime | None = None) -> IssuedRefreshToken:
    now = now or datetime.now(UTC)
    expires = now + timedelta(minutes=ttl_minutes)
    claims = {
        "user_id": user_id,
        "token_type": "refresh",
        "jti": secrets.token_urlsafe(32),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM)
    return IssuedRefreshToken(token, digest(token), now, expires)


# Verified access-token claims, by (key, token). Verifying the HMAC and parsing the JSON is a
# sizeable share of a cheap request's CPU, and a client sends the same token many times; the
# expiry is still checked on every use, and the user is still reloaded from the database.
_VERIFIED: dict[tuple[str, str], dict] = {}
_VERIFIED_MAX = 4096


def decode(key: str, token: str, expected_type: str) -> dict:
    if expected_type == "access":
        claims = _VERIFIED.get((key, token))
        if claims is not None:
            if claims["exp"] <= time.time():
                raise TokenError("expired", expired=True)
            return claims
    claims = _decode(key, token, expected_type)
    if expected_type == "access":
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.pop(next(iter(_VERIFIED)))
        _VERIFIED[(key, token)] = claims
    return claims


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _decode(key: str, token: str, expected_type: str) -> dict:
    required = ["user_id", "token_type", "iat", "exp"] + (["jti"] if expected_type == "refresh" else [])
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": required})
    except jwt.ExpiredSignatureError:
        raise TokenError("expired", expired=True) from None
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature") from None
    except jwt.MissingRequiredClaimError:
        raise TokenError("missing_claims") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError("wrong_algorithm") from None
    except jwt.InvalidTokenError:
        raise TokenError("malformed") from None
    if claims.get("token_type") != expected_type:
        raise TokenError("wrong_token_type")
    # PyJWT reads a numeric string ("9999999999") as a time; we never issue one, and the cached
    # path compares `exp` with a float: only JSON numbers are times here.
    if not all(_is_number(claims.get(name)) for name in ("iat", "exp")):
        raise TokenError("bad_claim_type")
    if not isinstance(claims.get("user_id"), str):
        raise TokenError("missing_claims")
    # API.md §2.1 lists role among an access token's claims. Authorization reads the role from the
    # database, but a token without one, or with a role we never issue, was not issued by us.
    if expected_type == "access" and claims.get("role") not in ROLES:
        raise TokenError("missing_claims")
    return claims

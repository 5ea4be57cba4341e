import base64
import json
import os
import threading
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt
import pytest

from server.auth import passwords
from server.auth.tokens import TokenError, decode, digest, issue_access, issue_refresh

KEY = "unit-test-key-0123456789abcdef0123456789"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_access_token_round_trip():
    claims = decode(KEY, issue_access(KEY, "u-1", "admin", 15), "access")
    assert claims["user_id"] == "u-1" and claims["role"] == "admin" and claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == 15 * 60


def test_refresh_token_has_a_long_random_jti_and_is_stored_as_digest():
    issued = issue_refresh(KEY, "u-1", 43200)
    claims = decode(KEY, issued.token, "refresh")
    assert len(claims["jti"]) >= 43  # 32 random bytes, url-safe
    assert issued.token_hash == digest(issued.token) and len(issued.token_hash) == 64


def test_expired_token():
    old = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(TokenError) as caught:
        decode(KEY, issue_access(KEY, "u", "user", 15, now=old), "access")
    assert caught.value.expired


# The wrong-algorithm case signs with the service's own key on purpose; PyJWT warns that it is
# short for HS384/HS512, which is beside the point of the test.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: issue_access("another-key-0123456789abcdef0123456789", "u", "user", 15), "bad_signature"),
        (
            lambda: (
                _b64({"alg": "none", "typ": "JWT"})
                + "."
                + _b64({"user_id": "u", "token_type": "access", "iat": 1, "exp": 9999999999})
                + "."
            ),
            None,
        ),
        (
            lambda: jwt.encode(
                {"user_id": "u", "token_type": "access", "iat": 1, "exp": 9999999999}, KEY, algorithm="HS512"
            ),
            "wrong_algorithm",
        ),
        (lambda: issue_refresh(KEY, "u", 60).token, "wrong_token_type"),
        (lambda: jwt.encode({"user_id": "u", "token_type": "access"}, KEY, algorithm="HS256"), "missing_claims"),
        (
            lambda: jwt.encode(
                {"user_id": "u", "token_type": "access", "iat": 1, "exp": 9999999999}, KEY, algorithm="HS256"
            ),
            "missing_claims",
        ),  # no role
        (
            lambda: jwt.encode(
                {"user_id": "u", "role": "superhero", "token_type": "access", "iat": 1, "exp": 9999999999},
                KEY,
                algorithm="HS256",
            ),
            "missing_claims",
        ),
        (lambda: "not.a.token", "malformed"),
    ],
)
def test_invalid_tokens_are_refused(make, reason):
    with pytest.raises(TokenError) as caught:
        decode(KEY, make(), "access")
    assert not caught.value.expired
    if reason:
        assert caught.value.reason == reason


@pytest.mark.parametrize(
    "password, reason",
    [
        ("Sh0rt!", "Password must be at least 8 characters long."),
        ("weakpass", "Password must contain at least one uppercase letter."),
        ("WEAKPASS1!", "Password must contain at least one lowercase letter."),
        ("Weakpass!", "Password must contain at least one digit."),
        ("Weakpass1", "Password must contain at least one special character."),
        ("Str0ng!Pass", None),
    ],
)
def test_complexity_rules_report_the_first_failure(password, reason):
    assert passwords.complexity_failure(password) == reason


def test_bcrypt_hashes_verify_and_ask_for_a_rehash():
    hashed = bcrypt.hashpw(b"Str0ng!Pass", bcrypt.gensalt(rounds=4)).decode()
    assert passwords.verify_sync("Str0ng!Pass", hashed) == (True, True)
    assert passwords.verify_sync("wrong", hashed)[0] is False


def test_argon2id_is_the_new_hash():
    hashed = passwords.hash_sync("Str0ng!Pass")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_sync("Str0ng!Pass", hashed) == (True, False)
    assert passwords.verify_sync("nope", hashed) == (False, False)


def test_verified_tokens_are_remembered_but_still_expire(monkeypatch):
    import server.auth.tokens as tokens

    token = issue_access(KEY, "u-cache", "user", 1)
    assert decode(KEY, token, "access")["user_id"] == "u-cache"
    assert (KEY, token) in tokens._VERIFIED
    monkeypatch.setattr(tokens.time, "time", lambda: 10**12)  # far past the token's exp
    with pytest.raises(TokenError) as caught:
        decode(KEY, token, "access")
    assert caught.value.expired
    # Another key never reuses the remembered claims.
    with pytest.raises(TokenError):
        decode("some-other-key-0123456789abcdef0123456789", token, "access")


def test_hashing_threads_get_a_fair_share_not_the_idle_class():
    # SCHED_IDLE (and nice 19) starved logins whenever the service was busy (docs/adr/0010).
    gate = passwords.HashCapacity(1, 0)
    try:
        nice, policy = gate.executor.submit(
            lambda: (os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), os.sched_getscheduler(0))
        ).result(timeout=10)
        hashed = gate.executor.submit(passwords.hash_sync, "Str0ng!Pass").result(timeout=60)
    finally:
        gate.close()
    assert policy == os.SCHED_OTHER and nice == os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert passwords.verify_sync("Str0ng!Pass", hashed) == (True, False)

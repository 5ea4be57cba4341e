import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from server.auth.tokens import issue_access, issue_refresh
from tests.conftest import TEST_KEY

STRONG = "Str0ng!Pass"


async def login(client, account):
    response = await client.post("/api/v1/auth/login", json={"email": account.email, "password": STRONG})
    assert response.status_code == 200
    return response.json()


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_refresh_rotates_and_detects_reuse(client, user, conn):
    first = await login(client, user)
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.headers["www-authenticate"] == "Bearer"
    assert reuse.json()["error"] == {
        "code": "TOKEN_REVOKED",
        "message": "Refresh token has been revoked. Please log in again.",
        "details": {},
    }
    # Reuse revokes the whole family, so the newest token is dead too.
    newest = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert newest.status_code == 401 and newest.json()["error"]["code"] == "TOKEN_REVOKED"
    assert (
        await conn.fetchval("SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL", user.id)
        == 0
    )


async def test_concurrent_refreshes_of_one_token_give_one_success(client, user):
    import asyncio

    tokens = await login(client, user)
    responses = await asyncio.gather(
        *[client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(6)]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1 and statuses.count(401) == 5


@pytest.mark.parametrize(
    "make",
    [
        lambda user: "garbage",
        lambda user: issue_refresh("other-key-0123456789abcdef0123456789ab", user.id, 60).token,
        lambda user: issue_access(TEST_KEY, user.id, "user", 15),
        lambda user: issue_refresh(TEST_KEY, user.id, 60).token,  # well signed but never stored
        lambda user: issue_refresh(TEST_KEY, user.id, 60, now=datetime.now(UTC) - timedelta(days=2)).token,
    ],
)
async def test_invalid_refresh_tokens(client, user, make):
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": make(user)})
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "INVALID_REFRESH_TOKEN",
        "message": "Invalid or expired refresh token.",
        "details": {},
    }


async def test_refresh_body_is_validated(client):
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": ""})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["violations"][0]["field"] == "refresh_token"


async def test_refresh_for_an_inactive_user(client, user, conn):
    tokens = await login(client, user)
    await conn.execute("UPDATE users SET active = false WHERE id = $1", user.id)
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401 and response.json()["error"]["code"] == "USER_INACTIVE"


def _expired(user):
    return issue_access(TEST_KEY, user.id, "user", 15, now=datetime.now(UTC) - timedelta(hours=1))


# The wrong-algorithm case signs with the service's own key on purpose; PyJWT warns that it is
# short for HS384/HS512, which is beside the point of the test.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    "header, code",
    [
        (lambda u: None, "INVALID_TOKEN"),
        (lambda u: "Basic dXNlcjpwYXNz", "INVALID_TOKEN"),
        (lambda u: "Bearer not-a-jwt", "INVALID_TOKEN"),
        (
            lambda u: "Bearer " + issue_access("wrong-key-0123456789abcdef0123456789ab", u.id, "user", 15),
            "INVALID_TOKEN",
        ),
        (
            lambda u: (
                "Bearer "
                + _b64({"alg": "none", "typ": "JWT"})
                + "."
                + _b64({"user_id": u.id, "role": "admin", "token_type": "access", "iat": 1, "exp": 9999999999})
                + "."
            ),
            "INVALID_TOKEN",
        ),
        (
            lambda u: (
                "Bearer "
                + jwt.encode(
                    {"user_id": u.id, "role": "user", "token_type": "access", "iat": 1, "exp": 9999999999},
                    TEST_KEY,
                    algorithm="HS384",
                )
            ),
            "INVALID_TOKEN",
        ),
        (lambda u: "Bearer " + issue_refresh(TEST_KEY, u.id, 60).token, "INVALID_TOKEN"),
        (
            lambda u: "Bearer " + issue_access(TEST_KEY, "00000000-0000-0000-0000-000000000000", "user", 15),
            "INVALID_TOKEN",
        ),
        (
            lambda u: (
                "Bearer "
                + jwt.encode(
                    {"role": "user", "token_type": "access", "iat": 1, "exp": 9999999999}, TEST_KEY, algorithm="HS256"
                )
            ),
            "INVALID_TOKEN",
        ),
        (lambda u: "Bearer " + _expired(u), "EXPIRED_TOKEN"),
    ],
)
async def test_access_token_edge_cases(client, user, header, code):
    value = header(user)
    response = await client.get("/api/v1/users/me", headers={"Authorization": value} if value else {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == code and error["details"] == {}
    expected = (
        "Access token has expired. Please refresh your token."
        if code == "EXPIRED_TOKEN"
        else "Invalid or missing access token."
    )
    assert error["message"] == expected


async def test_inactive_user_token(client, make_account):
    account = await make_account(active=False)
    response = await client.get("/api/v1/users/me", token=account.token)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "USER_INACTIVE",
        "message": "User account is inactive.",
        "details": {"user_id": account.id},
    }


async def test_admin_checks_use_the_role_in_the_database(client, user, settings):
    forged = issue_access(TEST_KEY, user.id, "admin", 15)  # the claim says admin, the database says user
    response = await client.get("/debug/version", token=forged)
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "FORBIDDEN",
        "message": "You do not have permission to perform this action.",
        "details": {"required_role": "admin"},
    }

"""Crafted input never makes a 500 (API.md §1.9), and token responses are never cached."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from tests.conftest import TEST_KEY, TEST_PASSWORD

HUGE_EXPONENTS = ["1e9999999999999999999", "1e-9999999999999999999", "-1E+9999999999999999999"]


@pytest.mark.parametrize("number", HUGE_EXPONENTS)
async def test_a_huge_exponent_anywhere_in_a_body_is_400_malformed_json(client, number):
    body = '{"email":"a@b.cc","password":"x","junk":' + number + "}"
    response = await client.post(
        "/api/v1/auth/login", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "MALFORMED_JSON" and "out of range" in error["details"]["reason"]


MONEY_AND_RATE_FIELDS = [
    ("POST", "/api/v1/users/me/payouts", "user", "amount", {}),
    ("POST", "/api/v1/purchases", "user", "amount", {"merchant_id": "x", "currency": "EUR", "external_id": "e"}),
    ("POST", "/api/v1/merchants", "admin", "default_cashback_percentage", {"name": "Shop"}),
    ("POST", "/api/v1/offers", "admin", "cashback_value", {"cashback_type": "percent"}),
    ("POST", "/api/v1/offers", "admin", "monthly_cap", {"cashback_type": "percent"}),
]


@pytest.mark.parametrize("exponent", ["1e1000000", "1E+999999999999999999", "-1e1000000"])
@pytest.mark.parametrize(("method", "path", "role", "field", "extra"), MONEY_AND_RATE_FIELDS)
async def test_money_and_rates_with_exponents_past_a_million_are_422_too_large(
    client, make_account, method, path, role, field, extra, exponent
):
    account = await make_account(role)
    as_string = json.dumps({**extra, field: exponent})
    as_number = as_string.replace(f'"{exponent}"', exponent)
    for raw in (as_string, as_number):
        response = await client.request(
            method, path, account.token, content=raw.encode(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (raw, response.text)
        reasons = {v["field"]: v["reason"] for v in response.json()["error"]["details"]["violations"]}
        assert reasons[field].endswith("is too large."), reasons


def _signed(claims: dict) -> str:
    def part(data: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    head = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(claims)
    signature = hmac.new(TEST_KEY.encode(), head, hashlib.sha256).digest()
    return (head + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.mark.parametrize("claim", ["exp", "iat"])
async def test_a_token_whose_times_are_numeric_strings_is_401_on_every_use(client, user, claim):
    now = int(time.time())
    claims = {"user_id": user.id, "role": "user", "token_type": "access", "iat": now, "exp": now + 900}
    claims[claim] = str(claims[claim])
    token = _signed(claims)
    for _ in range(2):  # the second use took the cached-claims path
        response = await client.get("/api/v1/users/me", token)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "INVALID_TOKEN"


async def test_login_and_refresh_responses_are_never_cached(client, user):
    login = await client.post("/api/v1/auth/login", json={"email": user.email, "password": TEST_PASSWORD})
    assert login.status_code == 200
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]})
    assert refresh.status_code == 200
    for response in (login, refresh):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"

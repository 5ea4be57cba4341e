"""Acceptance flows W1 (admin platform setup) and W2 (registration and discovery) of API.md §7, over HTTP
against a real server process running the demo seed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

API = "/api/v1"
LUXWATCHES_OFFER = "d0000001-0000-0000-0000-000000000001"
AUTOPARTS_OFFER = "c3d4e5f6-a7b8-4c9d-1111-000000000021"
KIDSCLOSET_OFFER = "c3d4e5f6-a7b8-4c9d-1111-000000000022"
VALID_SEED_OFFERS = 22  # 28 merchants: minus AutoParts (ended), KidsCloset (future), ChefSupplies (offer off),
#                         LuxWatches and VintageVault (merchant off) and NightOwl (no offer)


class Caller:
    """One account's view of the API."""

    def __init__(self, http: httpx.Client, token: str | None) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __getattr__(self, method: str):
        def call(path: str, **kwargs) -> httpx.Response:
            return self.http.request(method.upper(), API + path, headers=self.headers, **kwargs)

        return call


def code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def utc_day(offset: int) -> str:
    return str(datetime.now(UTC).date() + timedelta(days=offset))


def every_active_offer(caller: Caller) -> list[dict]:
    response = caller.get("/offers/active", params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_w1_admin_platform_setup(seeded_server):
    # 1. carol logs in.
    carol = Caller(seeded_server.http, seeded_server.login("carol@clicknback.com"))
    alice = Caller(seeded_server.http, seeded_server.login("alice@clicknback.com"))

    # 2. A new, inactive merchant.
    name = f"Acme-{uuid.uuid4().hex[:8]}"
    created = carol.post("/merchants", json={"name": name, "default_cashback_percentage": 5.0, "active": False})
    assert created.status_code == 201, created.text
    merchant = created.json()
    assert (merchant["name"], merchant["default_cashback_percentage"], merchant["active"]) == (name, 5.0, False)
    merchant_id = merchant["id"]

    # 3. Same name in another case; a percentage above the maximum.
    taken = carol.post("/merchants/", json={"name": name.swapcase(), "default_cashback_percentage": 5.0})
    assert taken.status_code == 409 and code(taken) == "MERCHANT_NAME_TAKEN"
    too_high = carol.post("/merchants", json={"name": name + "-2", "default_cashback_percentage": 25})
    assert too_high.status_code == 400 and code(too_high) == "VALIDATION_ERROR"

    # 4. No offers for an inactive merchant; activate it and find it among the active ones.
    offer_body = {
        "merchant_id": merchant_id,
        "cashback_type": "percent",
        "cashback_value": 5.0,
        "start_date": utc_day(0),
        "end_date": utc_day(30),
        "monthly_cap": 20,
    }
    refused = carol.post("/offers", json=offer_body)
    assert refused.status_code == 422 and code(refused) == "MERCHANT_NOT_ACTIVE"
    activated = carol.patch(f"/merchants/{merchant_id}/status", json={"status": "active"})
    assert activated.status_code == 200 and activated.json() == {"id": merchant_id, "status": "active"}
    listed = carol.get("/merchants", params={"active": "true", "limit": 100}).json()
    assert merchant_id in [m["id"] for m in listed["data"]]
    assert all(m["active"] for m in listed["data"])

    # 5. The first offer is created active.
    first = carol.post("/offers/", json=offer_body)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "active"
    offer_1 = first.json()["id"]

    # 6. One active offer per merchant; no start date in the past.
    second = carol.post("/offers", json=offer_body)
    assert second.status_code == 409 and code(second) == "ACTIVE_OFFER_ALREADY_EXISTS"
    assert second.json()["error"]["details"]["existing_offer_id"] == offer_1
    past = carol.post("/offers", json={**offer_body, "start_date": utc_day(-1)})
    assert past.status_code == 400 and code(past) == "VALIDATION_ERROR"
    assert [v["field"] for v in past.json()["error"]["details"]["violations"]] == ["start_date"]

    # 7. Deactivate offer 1, create offer 2, and offer 1 can no longer be activated.
    assert carol.patch(f"/offers/{offer_1}/status", json={"status": "inactive"}).status_code == 200
    created_2 = carol.post("/offers", json=offer_body)
    assert created_2.status_code == 201
    offer_2 = created_2.json()["id"]
    blocked = carol.patch(f"/offers/{offer_1}/status", json={"status": "active"})
    assert blocked.status_code == 409 and code(blocked) == "ACTIVE_OFFER_ALREADY_EXISTS"

    # 8. With offer 2 and the merchant off, activation fails on the merchant.
    assert carol.patch(f"/offers/{offer_2}/status/", json={"status": "inactive"}).status_code == 200
    assert carol.patch(f"/merchants/{merchant_id}/status/", json={"status": "inactive"}).status_code == 200
    no_merchant = carol.patch(f"/offers/{offer_1}/status", json={"status": "active"})
    assert no_merchant.status_code == 422 and code(no_merchant) == "MERCHANT_NOT_ACTIVE"

    # 9. Reactivate both; alice sees the offer, but not the merchant list.
    assert carol.patch(f"/merchants/{merchant_id}/status", json={"status": "active"}).status_code == 200
    assert carol.patch(f"/offers/{offer_1}/status", json={"status": "active"}).status_code == 200
    assert offer_1 in [o["id"] for o in every_active_offer(alice)]
    details = alice.get(f"/offers/{offer_1}")
    assert details.status_code == 200
    assert {
        k: details.json()[k] for k in ("merchant_name", "cashback_type", "cashback_value", "monthly_cap", "status")
    } == {
        "merchant_name": name,
        "cashback_type": "percent",
        "cashback_value": 5.0,
        "monthly_cap": 20.0,
        "status": "active",
    }
    forbidden = alice.get("/merchants")
    assert forbidden.status_code == 403 and code(forbidden) == "FORBIDDEN"

    # 10. The merchant's audit trail, newest first.
    trail = carol.get("/audit-logs", params={"resource_type": "merchant", "resource_id": merchant_id})
    assert trail.status_code == 200
    rows = trail.json()["data"]
    assert [r["action"] for r in rows] == ["MERCHANT_STATUS_CHANGED"] * 3 + ["MERCHANT_CREATED"]
    assert [r["details"] for r in rows[:3]] == [
        {"from": "inactive", "to": "active"},
        {"from": "active", "to": "inactive"},
        {"from": "inactive", "to": "active"},
    ]
    assert all(r["actor_type"] == "admin" for r in rows)


def test_w2_registration_and_discovery(seeded_server):
    http = seeded_server.http
    anonymous = Caller(http, None)

    # 1. Register and look around.
    email = f"w2-{uuid.uuid4().hex[:8]}@example.test"
    registered = anonymous.post("/users", json={"email": email, "password": "Str0ng!Pass"})
    assert registered.status_code == 201, registered.text
    user = registered.json()
    assert (user["email"], user["role"], user["active"]) == (email, "user", True)
    assert set(user) == {"id", "email", "role", "active", "created_at"}
    me = Caller(http, seeded_server.login(email))
    assert me.get("/users/me").json() == user
    wallet = me.get("/users/me/wallet")
    assert wallet.status_code == 200
    assert all(value == "0.00" for key, value in wallet.json().items() if key.endswith("_balance"))

    # 2. Duplicate email (other case) and a weak password.
    duplicate = anonymous.post("/users", json={"email": email.upper(), "password": "Str0ng!Pass"})
    assert duplicate.status_code == 409 and code(duplicate) == "EMAIL_ALREADY_REGISTERED"
    weak = anonymous.post("/users", json={"email": "weak-" + email, "password": "weakpass"})
    assert weak.status_code == 400 and code(weak) == "PASSWORD_NOT_COMPLEX_ENOUGH"
    assert weak.json()["error"]["details"]["violations"] == [
        {"field": "password", "reason": "Password must contain at least one uppercase letter."}
    ]

    # 3. Login, wrong password indistinguishable from an unknown email, then throttling.
    assert anonymous.post("/auth/login", json={"email": email, "password": "Str0ng!Pass"}).status_code == 200
    wrong = anonymous.post("/auth/login", json={"email": email, "password": "Wr0ng!Pass"})
    unknown = anonymous.post("/auth/login", json={"email": "nobody-" + email, "password": "Wr0ng!Pass"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() and code(wrong) == "INVALID_CREDENTIALS"
    for _ in range(4):
        assert anonymous.post("/auth/login", json={"email": email, "password": "Wr0ng!Pass"}).status_code == 401
    throttled = anonymous.post("/auth/login", json={"email": email, "password": "Str0ng!Pass"})
    assert throttled.status_code == 429 and code(throttled) == "TOO_MANY_ATTEMPTS"
    assert int(throttled.headers["Retry-After"]) >= 1

    # 4. Token rotation with another user.
    pair = anonymous.post("/auth/login", json={"email": "bob@clicknback.com", "password": "Str0ng!Pass"}).json()
    rotated = anonymous.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    new_pair = rotated.json()
    assert new_pair["refresh_token"] != pair["refresh_token"] and new_pair["token_type"] == "bearer"
    reused = anonymous.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reused.status_code == 401 and code(reused) == "TOKEN_REVOKED"
    revoked_too = anonymous.post("/auth/refresh", json={"refresh_token": new_pair["refresh_token"]})
    assert revoked_too.status_code == 401 and code(revoked_too) == "TOKEN_REVOKED"
    refresh_as_bearer = Caller(http, new_pair["refresh_token"]).get("/users/me")
    assert refresh_as_bearer.status_code == 401 and code(refresh_as_bearer) == "INVALID_TOKEN"
    tampered_token = new_pair["access_token"][:-4] + (
        "AAAA" if not new_pair["access_token"].endswith("AAAA") else "BBBB"
    )
    tampered = Caller(http, tampered_token).get("/users/me")
    assert tampered.status_code == 401 and code(tampered) == "INVALID_TOKEN"

    # 5. Only offers valid today; pagination is validated.
    alice = Caller(http, seeded_server.login("alice@clicknback.com"))
    first_page = alice.get("/offers/active", params={"offset": 0, "limit": 10})
    assert first_page.status_code == 200
    assert len(first_page.json()["data"]) == 10
    assert first_page.json()["pagination"] == {"offset": 0, "limit": 10, "total": VALID_SEED_OFFERS}
    offers = every_active_offer(alice)
    ids = {o["id"] for o in offers}
    assert len(offers) == VALID_SEED_OFFERS and not ids & {AUTOPARTS_OFFER, KIDSCLOSET_OFFER, LUXWATCHES_OFFER}
    names = [o["merchant_name"].lower() for o in offers]
    assert names == sorted(names)
    today = utc_day(0)
    assert all(o["start_date"] <= today <= o["end_date"] for o in offers)
    zero_limit = alice.get("/offers/active", params={"limit": 0})
    assert zero_limit.status_code == 422 and code(zero_limit) == "VALIDATION_ERROR"

    # 6. Offer visibility.
    carol = Caller(http, seeded_server.login("carol@clicknback.com"))
    hidden = alice.get(f"/offers/{LUXWATCHES_OFFER}")
    assert hidden.status_code == 403 and code(hidden) == "FORBIDDEN"
    assert carol.get(f"/offers/{LUXWATCHES_OFFER}").status_code == 200
    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = alice.get(f"/offers/{missing}")
        assert response.status_code == 404 and code(response) == "NOT_FOUND"

    # 7. Unknown route and wrong method, in the envelope.
    nope = http.get("/api/v1/nope")
    assert nope.status_code == 404 and code(nope) == "NOT_FOUND"
    wrong_method = http.delete("/api/v1/offers")
    assert wrong_method.status_code == 405 and code(wrong_method) == "METHOD_NOT_ALLOWED"
    assert "Allow" in wrong_method.headers

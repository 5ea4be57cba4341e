"""Payouts (API.md §3.7, §4.5): request, lists, admin completion and failure, and concurrency."""

import asyncio
import json
import uuid
from decimal import Decimal

import pytest

from tests.integration.purchases.helpers import assert_consistent, set_balances, wallet_row

OWN = "/api/v1/users/me/payouts"


async def _request(client, account, amount):
    return await client.post(OWN, token=account.token, json={"amount": amount})


@pytest.mark.parametrize("path", [OWN, OWN + "/"])
async def test_request_reserves_the_amount(client, conn, user, path):
    await set_balances(conn, user.id, "15.00")
    response = await client.post(path, token=user.token, json={"amount": "10.00"})
    assert response.status_code == 201, response.text
    payout = response.json()
    assert set(payout) == {"id", "user_id", "amount", "status", "requested_at", "processed_at", "external_reference"}
    assert payout["user_id"] == user.id and payout["amount"] == "10.00" and payout["status"] == "requested"
    assert payout["processed_at"] is None and payout["external_reference"] is None
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": Decimal("5.00"), "paid": 0}
    audit = await conn.fetchrow("SELECT * FROM audit_logs WHERE resource_id = $1", uuid.UUID(payout["id"]))
    assert (audit["action"], audit["actor_type"], str(audit["actor_id"]), audit["resource_type"]) == (
        "PAYOUT_REQUESTED",
        "user",
        user.id,
        "payout",
    )
    assert json.loads(audit["details"]) == {"amount": "10.00", "available_balance_after": "5.00"}
    await assert_consistent(conn)


async def test_request_checks_in_order(client, conn, user, business_warnings):
    await set_balances(conn, user.id, "15.00")
    for amount in ("9.99", "0", "-10.00"):
        low = await _request(client, user, amount)
        assert low.status_code == 422
        assert low.json()["error"]["details"]["violations"] == [
            {"field": "amount", "reason": "Minimum payout amount is 10.00."}
        ]
    bad = await _request(client, user, "10.001")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    missing = await client.post(OWN, token=user.token, json={})
    assert missing.status_code == 422
    too_much = await _request(client, user, "20.00")
    assert too_much.status_code == 409
    assert too_much.json()["error"] == {
        "code": "INSUFFICIENT_BALANCE",
        "message": "Insufficient available balance for this payout.",
        "details": {"requested_amount": "20.00", "available_balance": "15.00"},
    }
    assert [w["reason"] for w in business_warnings] == ["balance_would_go_negative"]
    first = await _request(client, user, 10)
    assert first.status_code == 201
    # The open request is reported before the balance (5.00 left would also be short).
    second = await _request(client, user, "10.00")
    assert second.status_code == 409
    assert second.json()["error"] == {
        "code": "PAYOUT_ALREADY_REQUESTED",
        "message": "A payout request is already awaiting processing.",
        "details": {"payout_id": first.json()["id"]},
    }
    await assert_consistent(conn)


async def test_minimum_follows_the_setting(conn, settings, make_account):
    from server.app import create_app
    from tests.conftest import with_settings
    from tests.support.client import AppClient

    account = await make_account()
    await set_balances(conn, account.id, "15.00")
    app_client = AppClient(create_app(with_settings(settings, payout_minimum_amount=Decimal("12.50"))))
    await app_client.start()
    try:
        low = await _request(app_client, account, "12.49")
        assert low.json()["error"]["details"]["violations"][0]["reason"] == "Minimum payout amount is 12.50."
        assert (await _request(app_client, account, "12.50")).status_code == 201
    finally:
        await app_client.stop()


@pytest.mark.parametrize(
    "outcome, expected_wallet",
    [
        ("completed", {"pending": 0, "available": Decimal("5.00"), "paid": Decimal("10.00")}),
        ("failed", {"pending": 0, "available": Decimal("15.00"), "paid": 0}),
    ],
)
async def test_admin_processes_a_payout(client, conn, user, admin, outcome, expected_wallet):
    await set_balances(conn, user.id, "15.00")
    payout_id = (await _request(client, user, "10.00")).json()["id"]
    listed = (await client.get("/api/v1/payouts", token=admin.token, params={"status": "requested"})).json()
    assert [p["id"] for p in listed["data"]] == [payout_id]
    assert (await client.get("/api/v1/payouts", token=user.token)).status_code == 403
    response = await client.patch(
        f"/api/v1/payouts/{payout_id}/", token=admin.token, json={"status": outcome, "external_reference": "bank-42"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == outcome and body["processed_at"] is not None
    assert body["external_reference"] == "bank-42"
    assert await wallet_row(conn, user.id) == expected_wallet
    assert str(await conn.fetchval("SELECT processed_by FROM payouts")) == admin.id
    again = await client.patch(f"/api/v1/payouts/{payout_id}", token=admin.token, json={"status": outcome})
    assert again.status_code == 400
    assert again.json()["error"] == {
        "code": "INVALID_PAYOUT_TRANSITION",
        "message": f"Cannot change payout '{payout_id}' from '{outcome}' to '{outcome}'.",
        "details": {
            "payout_id": payout_id,
            "current_status": outcome,
            "requested_status": outcome,
            "allowed_from": ["requested"],
        },
    }
    approved = await client.patch(f"/api/v1/payouts/{payout_id}", token=admin.token, json={"status": "approved"})
    assert approved.status_code == 422
    action = "PAYOUT_COMPLETED" if outcome == "completed" else "PAYOUT_FAILED"
    audit = await conn.fetchrow("SELECT * FROM audit_logs WHERE action = $1", action)
    assert audit["actor_type"] == "admin" and str(audit["actor_id"]) == admin.id
    assert json.loads(audit["details"]) == {"user_id": user.id, "amount": "10.00", "external_reference": "bank-42"}
    await assert_consistent(conn)


async def test_process_errors(client, conn, user, admin):
    for raw in (str(uuid.uuid4()), "nope"):
        missing = await client.patch(f"/api/v1/payouts/{raw}", token=admin.token, json={"status": "failed"})
        assert missing.status_code == 404
        assert missing.json()["error"]["details"] == {"resource_type": "payout", "resource_id": raw}
        assert missing.json()["error"]["message"] == f"Payout with ID '{raw}' does not exist."
    await set_balances(conn, user.id, "15.00")
    payout_id = (await _request(client, user, "10.00")).json()["id"]
    long_reference = await client.patch(
        f"/api/v1/payouts/{payout_id}", token=admin.token, json={"status": "completed", "external_reference": "x" * 256}
    )
    assert long_reference.status_code == 422
    assert (
        await client.patch(f"/api/v1/payouts/{payout_id}", token=user.token, json={"status": "completed"})
    ).status_code == 403
    no_reference = await client.patch(
        f"/api/v1/payouts/{payout_id}", token=admin.token, json={"status": "completed", "external_reference": None}
    )
    assert no_reference.status_code == 200 and no_reference.json()["external_reference"] is None


async def test_lists_sort_filter_and_stay_private(client, conn, user, admin, make_account):
    other = await make_account()
    await set_balances(conn, user.id, "50.00")
    await set_balances(conn, other.id, "50.00")
    first = (await _request(client, user, "10.00")).json()["id"]
    await client.patch(f"/api/v1/payouts/{first}", token=admin.token, json={"status": "completed"})
    second = (await _request(client, user, "11.00")).json()["id"]
    theirs = (await _request(client, other, "12.00")).json()["id"]
    own = (await client.get(OWN, token=user.token)).json()
    assert [p["id"] for p in own["data"]] == [second, first]
    assert own["pagination"] == {"offset": 0, "limit": 10, "total": 2}
    completed = (await client.get(OWN + "/", token=user.token, params={"status": "completed"})).json()
    assert [p["id"] for p in completed["data"]] == [first]
    bad = await client.get(OWN, token=user.token, params={"status": "approved"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    everyone = (await client.get("/api/v1/payouts/", token=admin.token)).json()
    assert [p["id"] for p in everyone["data"]] == [theirs, second, first]
    by_user = (await client.get("/api/v1/payouts", token=admin.token, params={"user_id": other.id, "limit": 1})).json()
    assert [p["id"] for p in by_user["data"]] == [theirs]
    assert by_user["pagination"] == {"offset": 0, "limit": 1, "total": 1}
    assert (await client.get("/api/v1/payouts", token=admin.token, params={"user_id": "x"})).status_code == 422


async def test_100_concurrent_requests_on_one_wallet(client, conn, user):
    await set_balances(conn, user.id, "15.00")
    responses = await asyncio.gather(*(_request(client, user, "10.00") for _ in range(100)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(409) == 99, statuses
    codes = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert codes <= {"PAYOUT_ALREADY_REQUESTED", "INSUFFICIENT_BALANCE"}
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": Decimal("5.00"), "paid": 0}
    assert await conn.fetchval("SELECT count(*) FROM payouts WHERE status = 'requested'") == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'PAYOUT_REQUESTED'") == 1
    await assert_consistent(conn)


async def test_concurrent_requests_never_overdraw_across_completions(client, conn, user, admin):
    """Requests race with admins completing them: each accepted payout is covered, nothing goes negative."""
    await set_balances(conn, user.id, "55.00")

    async def request_then_complete():
        response = await _request(client, user, "10.00")
        if response.status_code == 201:
            done = await client.patch(
                f"/api/v1/payouts/{response.json()['id']}", token=admin.token, json={"status": "completed"}
            )
            assert done.status_code == 200
        else:
            assert response.status_code == 409
        return response.status_code

    for _ in range(10):  # bounded rounds of 10 concurrent requests
        await asyncio.gather(*(request_then_complete() for _ in range(10)))
    assert await conn.fetchval("SELECT count(*) FROM payouts WHERE status = 'completed'") == 5
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": Decimal("5.00"), "paid": Decimal("50.00")}
    await assert_consistent(conn)

"""Admin confirmation and reversal (API.md §3.5, §4.4, §4.5): guards, wallet movements, audit."""

import uuid
from decimal import Decimal

import pytest

from tests.integration.purchases.helpers import assert_consistent, ingest, make_shop, wallet_row


async def _audit(conn, purchase_id):
    return await conn.fetch(
        "SELECT actor_type, actor_id, action, details FROM audit_logs WHERE resource_id = $1 ORDER BY occurred_at",
        purchase_id,
    )


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_confirmation_moves_cashback_to_available_once(client, conn, user, admin, suffix):
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "75.00")).json()["id"]
    url = f"/api/v1/purchases/{purchase_id}/confirmation{suffix}"
    response = await client.post(url, token=admin.token)
    assert response.status_code == 200
    assert response.json() == {"id": purchase_id, "status": "confirmed", "cashback_amount": "3.75"}
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": Decimal("3.75"), "paid": 0}
    assert (
        await conn.fetchval("SELECT status FROM cashback_transactions WHERE purchase_id = $1", uuid.UUID(purchase_id))
        == "available"
    )
    again = await client.post(url, token=admin.token)
    assert again.status_code == 400
    assert again.json()["error"] == {
        "code": "PURCHASE_NOT_PENDING",
        "message": f"Cannot confirm purchase '{purchase_id}'. Purchase status is 'confirmed', not 'pending'.",
        "details": {"purchase_id": purchase_id, "current_status": "confirmed", "required_status": "pending"},
    }
    rows = await _audit(conn, purchase_id)
    assert [(r["action"], r["actor_type"], str(r["actor_id"])) for r in rows] == [
        ("PURCHASE_CONFIRMED_BY_ADMIN", "admin", admin.id)
    ]
    import json

    assert json.loads(rows[0]["details"]) == {
        "merchant_id": merchant_id,
        "amount": "75.00",
        "currency": "EUR",
        "cashback_amount": "3.75",
    }
    await assert_consistent(conn)


async def test_zero_cashback_confirms_too(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn, cap="1.00")
    await ingest(client, user, merchant_id, "100.00")
    purchase_id = (await ingest(client, user, merchant_id, "100.00")).json()["id"]
    response = await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)
    assert response.json()["cashback_amount"] == "0.00"
    assert (
        await conn.fetchval("SELECT status FROM cashback_transactions WHERE purchase_id = $1", uuid.UUID(purchase_id))
        == "available"
    )
    await assert_consistent(conn)


async def test_reverse_pending_then_again(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn, fixed="3.00")
    purchase_id = (await ingest(client, user, merchant_id, "85.00")).json()["id"]
    url = f"/api/v1/purchases/{purchase_id}/reverse"
    response = await client.patch(url, token=admin.token)
    assert response.status_code == 200
    assert response.json() == {"id": purchase_id, "status": "reversed", "cashback_amount": "0.00"}
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": 0, "paid": 0}
    row = await conn.fetchrow(
        "SELECT p.cashback_amount, t.amount, t.status FROM purchases p "
        "JOIN cashback_transactions t ON t.purchase_id = p.id WHERE p.id = $1",
        uuid.UUID(purchase_id),
    )
    assert (row["cashback_amount"], row["amount"], row["status"]) == (0, Decimal("3.00"), "reversed")
    again = await client.patch(url + "/", token=admin.token)
    assert again.status_code == 400
    assert again.json()["error"] == {
        "code": "PURCHASE_ALREADY_REVERSED",
        "message": f"Cannot reverse purchase '{purchase_id}'. Purchase is already reversed.",
        "details": {
            "purchase_id": purchase_id,
            "current_status": "reversed",
            "reversible_from_statuses": ["pending", "confirmed"],
        },
    }
    confirm = await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)
    assert confirm.json()["error"]["details"]["current_status"] == "reversed"
    import json

    rows = await _audit(conn, purchase_id)
    assert [(r["action"], r["actor_type"]) for r in rows] == [("PURCHASE_REVERSED", "admin")]
    assert json.loads(rows[0]["details"]) == {"prior_status": "pending", "reversed_cashback_amount": "3.00"}
    await assert_consistent(conn)


async def test_reverse_confirmed_takes_from_available(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "300.00")).json()["id"]
    await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)
    response = await client.patch(f"/api/v1/purchases/{purchase_id}/reverse", token=admin.token)
    assert response.status_code == 200
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": 0, "paid": 0}
    details = await conn.fetchval("SELECT details->>'prior_status' FROM audit_logs WHERE action = 'PURCHASE_REVERSED'")
    assert details == "confirmed"
    await assert_consistent(conn)


async def test_reverse_confirmed_with_cashback_already_paid_out_is_409(client, conn, user, admin, business_warnings):
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "300.00")).json()["id"]  # 15.00
    await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)
    assert (
        await client.post("/api/v1/users/me/payouts", token=user.token, json={"amount": "10.00"})
    ).status_code == 201
    response = await client.patch(f"/api/v1/purchases/{purchase_id}/reverse", token=admin.token)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "INSUFFICIENT_BALANCE"
    assert error["details"] == {"purchase_id": purchase_id, "requested_amount": "15.00", "available_balance": "5.00"}
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", uuid.UUID(purchase_id)) == "confirmed"
    assert [w["reason"] for w in business_warnings] == ["balance_would_go_negative"]
    await assert_consistent(conn)


async def test_rejected_purchase_is_not_reversible(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id)).json()["id"]
    await conn.execute("UPDATE purchases SET status = 'rejected' WHERE id = $1", uuid.UUID(purchase_id))
    response = await client.patch(f"/api/v1/purchases/{purchase_id}/reverse", token=admin.token)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "PURCHASE_NOT_REVERSIBLE",
        "message": f"Cannot reverse purchase '{purchase_id}'. Rejected purchases cannot be reversed.",
        "details": {
            "purchase_id": purchase_id,
            "current_status": "rejected",
            "reversible_from_statuses": ["pending", "confirmed"],
        },
    }


async def test_transition_access_and_unknown_ids(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id)).json()["id"]
    for method, suffix in (("POST", "confirmation"), ("PATCH", "reverse")):
        denied = await client.request(method, f"/api/v1/purchases/{purchase_id}/{suffix}", token=user.token)
        assert denied.status_code == 403
        for raw in (str(uuid.uuid4()), "not-a-uuid"):
            missing = await client.request(method, f"/api/v1/purchases/{raw}/{suffix}", token=admin.token)
            assert missing.status_code == 404
            assert missing.json()["error"]["details"] == {"resource_type": "purchase", "resource_id": raw}
        wrong_method = await client.request("GET", f"/api/v1/purchases/{purchase_id}/{suffix}", token=admin.token)
        assert wrong_method.status_code == 405
    assert await conn.fetchval("SELECT status FROM purchases") == "pending"


@pytest.mark.parametrize("method, action", [("POST", "confirmation"), ("PATCH", "reverse")])
async def test_an_admin_transition_of_a_drifted_wallet_is_refused_and_logged(
    client, conn, user, admin, business_warnings, method, action
):
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "100.00")).json()["id"]  # 5.00 pending
    await conn.execute("UPDATE wallets SET pending_balance = 1.00 WHERE user_id = $1", user.id)
    response = await client.request(method, f"/api/v1/purchases/{purchase_id}/{action}", token=admin.token)
    # API.md §4.5: a shortfall is a documented 409, never a 500 or a constraint error.
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "INSUFFICIENT_BALANCE"
    assert error["details"] == {"purchase_id": purchase_id, "requested_amount": "5.00"}
    assert [w["reason"] for w in business_warnings] == ["balance_would_go_negative"]
    assert await conn.fetchval("SELECT status FROM purchases") == "pending"
    assert await wallet_row(conn, user.id) == {"pending": Decimal("1.00"), "available": 0, "paid": 0}
    assert await _audit(conn, purchase_id) == []

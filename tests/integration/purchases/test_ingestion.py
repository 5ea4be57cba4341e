"""POST /api/v1/purchases: check order, error texts, effect and the monthly cap (API.md §3.5, §4.1, §4.3)."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.integration.purchases.helpers import (
    assert_consistent,
    ingest,
    make_merchant,
    make_offer,
    make_shop,
    purchase_body,
    today,
    wallet_row,
)

URL = "/api/v1/purchases"


@pytest.mark.parametrize("path", [URL, URL + "/"])
async def test_ingestion_records_pending_purchase_transaction_and_credit(client, conn, user, path):
    merchant_id, offer_id = await make_shop(conn)
    body = purchase_body(user, merchant_id, "75.00")
    body["offer_id"] = str(uuid.uuid4())  # ignored: the server resolves the offer
    response = await client.post(path, token=user.token, json=body)
    assert response.status_code == 201, response.text
    payload = response.json()
    assert set(payload) == {"id", "status", "cashback_amount"}
    assert payload["status"] == "pending" and payload["cashback_amount"] == "3.75"
    purchase = await conn.fetchrow("SELECT * FROM purchases WHERE id = $1", payload["id"])
    assert purchase["offer_id"] == uuid.UUID(offer_id)
    assert purchase["currency"] == "EUR" and purchase["amount"] == Decimal("75.00")
    assert purchase["status"] == "pending" and purchase["cashback_amount"] == Decimal("3.75")
    transaction = await conn.fetchrow("SELECT * FROM cashback_transactions WHERE purchase_id = $1", purchase["id"])
    assert transaction["status"] == "pending" and transaction["amount"] == Decimal("3.75")
    assert str(transaction["user_id"]) == user.id
    assert await wallet_row(conn, user.id) == {"pending": Decimal("3.75"), "available": 0, "paid": 0}
    await assert_consistent(conn)


async def test_amounts_as_numbers_and_lowercase_currency_are_accepted(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    body = purchase_body(user, merchant_id, 100, currency="eur")
    response = await client.post(URL, token=user.token, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["cashback_amount"] == "5.00"
    assert await conn.fetchval("SELECT currency FROM purchases WHERE external_id = $1", body["external_id"]) == "EUR"


async def test_schema_violations_are_reported_together(client, conn, user):
    response = await client.post(
        URL, token=user.token, json={"external_id": "", "user_id": "nope", "amount": "1.005", "currency": "EURO"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["message"] == "Request validation failed."
    fields = {v["field"]: v["reason"] for v in error["details"]["violations"]}
    assert set(fields) == {"external_id", "user_id", "merchant_id", "amount", "currency"}
    assert fields["amount"] == "Amount must have at most 2 decimal places"


@pytest.mark.parametrize("amount", ["0", "-1.00", 1.005, "abc", True, "NaN"])
async def test_bad_amounts_are_422(client, conn, user, amount):
    merchant_id, _ = await make_shop(conn)
    response = await ingest(client, user, merchant_id, amount)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["violations"][0]["field"] == "amount"


async def test_schema_runs_before_the_ownership_check(client, conn, user, make_account):
    other = await make_account()
    response = await client.post(URL, token=user.token, json={"user_id": other.id})
    assert response.status_code == 422


async def test_ingesting_for_someone_else_is_403_even_for_admins(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn)
    for caller, target in ((user, admin), (admin, user)):
        body = purchase_body(target, merchant_id)
        response = await client.post(URL, token=caller.token, json=body)
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "FORBIDDEN",
            "message": "You can only ingest purchases on your own behalf.",
            "details": {"reason": "The user_id in the request does not match the authenticated user."},
        }


async def test_duplicate_of_own_purchase_returns_its_details(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    first = await ingest(client, user, merchant_id, "75.00", external_id="dup-1")
    assert first.status_code == 201
    again = await ingest(client, user, merchant_id, "10.00", external_id="dup-1")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "DUPLICATE_PURCHASE"
    assert error["message"] == "A purchase with external ID 'dup-1' has already been processed."
    row = await conn.fetchrow("SELECT id, created_at FROM purchases WHERE external_id = 'dup-1'")
    assert error["details"] == {
        "external_id": "dup-1",
        "purchase_id": str(row["id"]),
        "previously_created_at": row["created_at"].isoformat(),
        "previously_processed_amount": "75.00",
        "action": "The purchase was already recorded (purchase_id); nothing was recorded again, and a retry gets this same 409.",
    }
    assert await wallet_row(conn, user.id) == {"pending": Decimal("3.75"), "available": 0, "paid": 0}


async def test_retrying_a_duplicate_gets_the_same_409_its_action_announces(client, conn, user):
    """The action must not promise the original 201: a client that retries gets this 409 each time."""
    merchant_id, _ = await make_shop(conn)
    assert (await ingest(client, user, merchant_id, "75.00", external_id="dup-retry")).status_code == 201
    answers = [await ingest(client, user, merchant_id, "75.00", external_id="dup-retry") for _ in range(3)]
    assert {a.status_code for a in answers} == {409}
    assert answers[0].json() == answers[1].json() == answers[2].json()
    action = answers[0].json()["error"]["details"]["action"]
    assert "same 409" in action and "same result" not in action
    assert await conn.fetchval("SELECT count(*) FROM purchases WHERE external_id = 'dup-retry'") == 1


async def test_duplicate_of_another_users_purchase_reveals_only_the_external_id(client, conn, user, make_account):
    other = await make_account()
    merchant_id, _ = await make_shop(conn)
    assert (await ingest(client, user, merchant_id, external_id="shared-1")).status_code == 201
    response = await ingest(client, other, merchant_id, external_id="shared-1")
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"external_id": "shared-1"}


async def test_duplicate_check_runs_before_currency_merchant_and_offer(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    assert (await ingest(client, user, merchant_id, external_id="dup-2")).status_code == 201
    response = await ingest(client, user, str(uuid.uuid4()), external_id="dup-2", currency="USD")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "DUPLICATE_PURCHASE"


async def test_unsupported_currency(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    response = await ingest(client, user, merchant_id, currency="usd")
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "UNSUPPORTED_CURRENCY",
        "message": "Currency 'USD' is not supported. Only EUR is accepted at this time.",
        "details": {"currency": "USD", "reason": "The platform currently processes purchases in EUR only."},
    }


async def test_currency_check_runs_before_the_merchant_check(client, conn, user):
    response = await ingest(client, user, str(uuid.uuid4()), currency="USD")
    assert response.json()["error"]["code"] == "UNSUPPORTED_CURRENCY"


async def test_user_without_wallet_is_not_eligible(client, conn, user):
    merchant_id, _ = await make_shop(conn)
    await conn.execute("DELETE FROM wallets WHERE user_id = $1", user.id)
    response = await ingest(client, user, merchant_id)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "USER_NOT_ELIGIBLE",
        "message": "User is not eligible to ingest purchases.",
        "details": {
            "user_id": user.id,
            "reason": "Purchase cannot be ingested for users who are non-existent or inactive.",
        },
    }


@pytest.mark.parametrize("merchant_state", ["unknown", "inactive"])
async def test_merchant_not_eligible(client, conn, user, merchant_state):
    if merchant_state == "unknown":
        merchant_id = str(uuid.uuid4())
    else:
        merchant_id = await make_merchant(conn, active=False)
        await make_offer(conn, merchant_id)
    response = await ingest(client, user, merchant_id)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "MERCHANT_NOT_ELIGIBLE",
        "message": "Merchant is not eligible to process purchases.",
        "details": {
            "merchant_id": merchant_id,
            "reason": "Purchases cannot be processed for merchants who are non-existent or inactive.",
        },
    }


@pytest.mark.parametrize(
    "offer_state, reason",
    [
        ("none", "offer_unavailable"),
        ("inactive", "offer_unavailable"),
        ("expired", "offer_expired"),
        ("future", "offer_not_started"),
    ],
)
async def test_offer_not_available_is_422_and_logged(client, conn, user, business_warnings, offer_state, reason):
    merchant_id = await make_merchant(conn)
    if offer_state == "inactive":
        await make_offer(conn, merchant_id, active=False)
    elif offer_state == "expired":
        await make_offer(conn, merchant_id, start=today() - timedelta(days=60), end=today() - timedelta(days=1))
    elif offer_state == "future":
        await make_offer(conn, merchant_id, start=today() + timedelta(days=1), end=today() + timedelta(days=30))
    response = await ingest(client, user, merchant_id)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "OFFER_NOT_AVAILABLE",
        "message": f"No active offer is available for merchant '{merchant_id}'.",
        "details": {
            "merchant_id": merchant_id,
            "reason": "Purchases cannot be processed without a valid active offer for the merchant.",
        },
    }
    assert [w["reason"] for w in business_warnings] == [reason]
    assert await conn.fetchval("SELECT count(*) FROM purchases") == 0


async def test_offer_valid_on_its_first_and_last_day(client, conn, user):
    for start, end in ((today(), today() + timedelta(days=5)), (today() - timedelta(days=5), today())):
        merchant_id, _ = await make_shop(conn, start=start, end=end)
        assert (await ingest(client, user, merchant_id)).status_code == 201


async def test_monthly_cap_sequence(client, conn, user):
    merchant_id, _ = await make_shop(conn, cap="50")
    credited = []
    for amount in ("900.00", "200.00", "100.00"):
        response = await ingest(client, user, merchant_id, amount)
        assert response.status_code == 201
        credited.append(response.json()["cashback_amount"])
    assert credited == ["45.00", "5.00", "0.00"]
    assert (await wallet_row(conn, user.id))["pending"] == Decimal("50.00")
    zero = await conn.fetchrow(
        "SELECT p.status, t.amount, t.status AS tx FROM purchases p JOIN cashback_transactions "
        "t ON t.purchase_id = p.id WHERE p.cashback_amount = 0"
    )
    assert zero["status"] == "pending" and zero["amount"] == 0 and zero["tx"] == "pending"
    await assert_consistent(conn)


async def test_fixed_offer_is_capped_too(client, conn, user):
    merchant_id, _ = await make_shop(conn, fixed="3.00", percentage="0", cap="6.00")
    results = [(await ingest(client, user, merchant_id, "1.00")).json()["cashback_amount"] for _ in range(3)]
    assert results == ["3.00", "3.00", "0.00"]


async def test_cap_counts_only_this_offer_this_month_and_live_purchases(client, conn, user, make_account):
    merchant_id, offer_id = await make_shop(conn, cap="10")
    first = await ingest(client, user, merchant_id, "100.00")  # 5.00
    assert first.json()["cashback_amount"] == "5.00"
    # Rejected/reversed purchases, last month's purchases and other users' purchases do not count.
    await conn.execute("UPDATE purchases SET status = 'rejected' WHERE id = $1", first.json()["id"])
    await conn.execute(
        "UPDATE cashback_transactions SET status = 'reversed' WHERE purchase_id = $1", first.json()["id"]
    )
    await conn.execute("UPDATE wallets SET pending_balance = 0 WHERE user_id = $1", user.id)
    last_month = await ingest(client, user, merchant_id, "100.00")
    await conn.execute(
        "UPDATE purchases SET created_at = date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' "
        "- interval '1 second' WHERE id = $1",
        last_month.json()["id"],
    )
    other = await make_account()
    assert (await ingest(client, other, merchant_id, "200.00")).json()["cashback_amount"] == "10.00"
    assert (await ingest(client, user, merchant_id, "200.00")).json()["cashback_amount"] == "10.00"
    assert (await ingest(client, user, merchant_id, "200.00")).json()["cashback_amount"] == "0.00"
    # A new offer of the same merchant starts a fresh cap.
    await conn.execute("UPDATE offers SET active = false WHERE id = $1", offer_id)
    await make_offer(conn, merchant_id, cap="10")
    assert (await ingest(client, user, merchant_id, "20.00")).json()["cashback_amount"] == "1.00"
    await assert_consistent(conn)

"""A wallet balance at NUMERIC(19,2)'s limit: the change that would overflow it is a 409 that writes
nothing, never a 500 (ingestion, admin confirmation, payout completion)."""

from decimal import Decimal

from tests.integration.purchases.helpers import assert_consistent, ingest, make_shop, wallet_row

LIMIT = "99999999999999999.99"
NEAR_LIMIT = "99999999999999990.00"


def limit_error(response, balance: str, **details) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"] == {
        "code": "BALANCE_LIMIT_EXCEEDED",
        "message": f"This would take the wallet's {balance} balance past {LIMIT}, the most it can hold.",
        "details": {**details, "balance": balance, "limit": LIMIT},
    }


async def credit(client, conn, account, cashback: str, admin=None) -> str:
    """A purchase at a new shop whose fixed cashback is `cashback` (no cap in the way); confirmed by
    `admin` when given. Returns its id."""
    merchant_id, _ = await make_shop(conn, fixed=cashback, cap=LIMIT)
    response = await ingest(client, account, merchant_id, "1.00")
    assert response.status_code == 201, response.text
    purchase_id = response.json()["id"]
    if admin is not None:
        confirmed = await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)
        assert confirmed.status_code == 200, confirmed.text
    return purchase_id


async def test_an_ingestion_that_would_overflow_the_pending_balance_is_409(client, conn, user):
    await credit(client, conn, user, NEAR_LIMIT)
    merchant_id, _ = await make_shop(conn, fixed="20.00", cap=LIMIT)
    purchases = await conn.fetchval("SELECT count(*) FROM purchases")
    response = await ingest(client, user, merchant_id, "1.00", external_id="over-the-limit")
    limit_error(response, "pending", user_id=user.id, external_id="over-the-limit")
    assert await conn.fetchval("SELECT count(*) FROM purchases") == purchases
    assert await wallet_row(conn, user.id) == {"pending": Decimal(NEAR_LIMIT), "available": 0, "paid": 0}
    await assert_consistent(conn)


async def test_a_confirmation_that_would_overflow_the_available_balance_is_409(client, conn, user, admin):
    await credit(client, conn, user, NEAR_LIMIT, admin)
    purchase_id = await credit(client, conn, user, "20.00")
    response = await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)
    limit_error(response, "available", purchase_id=purchase_id)
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", purchase_id) == "pending"
    assert await wallet_row(conn, user.id) == {"pending": Decimal("20.00"), "available": Decimal(NEAR_LIMIT), "paid": 0}
    await assert_consistent(conn)


async def test_a_payout_completion_that_would_overflow_the_paid_balance_is_409(client, conn, user, admin):
    async def pay_out(amount: str):
        payout = await client.post("/api/v1/users/me/payouts", token=user.token, json={"amount": amount})
        assert payout.status_code == 201, payout.text
        payout_id = payout.json()["id"]
        return payout_id, await client.patch(
            f"/api/v1/payouts/{payout_id}", token=admin.token, json={"status": "completed"}
        )

    await credit(client, conn, user, NEAR_LIMIT, admin)
    assert (await pay_out(NEAR_LIMIT))[1].status_code == 200
    await credit(client, conn, user, "20.00", admin)
    payout_id, response = await pay_out("20.00")
    limit_error(response, "paid", payout_id=payout_id)
    assert await conn.fetchval("SELECT status FROM payouts WHERE id = $1", payout_id) == "requested"
    assert await wallet_row(conn, user.id) == {"pending": 0, "available": 0, "paid": Decimal(NEAR_LIMIT)}
    await assert_consistent(conn)

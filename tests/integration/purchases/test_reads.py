"""Purchase lists and details (API.md §3.5): filters, sort order, pagination, access."""

import uuid

import pytest

from tests.integration.purchases.helpers import ingest, make_shop

STATUS_MESSAGE = "'bogus' is not a valid purchase status. Allowed values: pending, confirmed, rejected, reversed."
PURCHASE_KEYS = {
    "id",
    "external_id",
    "user_id",
    "merchant_id",
    "merchant_name",
    "offer_id",
    "amount",
    "currency",
    "status",
    "cashback_amount",
    "cashback_status",
    "created_at",
}


async def _three_purchases(client, conn, user, other):
    merchant_a, _ = await make_shop(conn)
    merchant_b, _ = await make_shop(conn)
    ids = []
    for account, merchant, amount in (
        (user, merchant_a, "10.00"),
        (other, merchant_b, "20.00"),
        (user, merchant_b, "30.00"),
    ):
        response = await ingest(client, account, merchant, amount)
        ids.append(response.json()["id"])
    return ids, merchant_a, merchant_b


async def test_admin_list_sorts_newest_first_filters_and_paginates(client, conn, user, admin, make_account):
    other = await make_account()
    ids, merchant_a, merchant_b = await _three_purchases(client, conn, user, other)
    # Same created_at for two rows: the id breaks the tie, descending.
    await conn.execute("UPDATE purchases SET created_at = now() - interval '1 day' WHERE id = ANY($1::uuid[])", ids[:2])
    for path in ("/api/v1/purchases", "/api/v1/purchases/"):
        response = await client.get(path, token=admin.token)
        assert response.status_code == 200
        body = response.json()
        assert body["pagination"] == {"offset": 0, "limit": 10, "total": 3}
        assert [p["id"] for p in body["data"]] == [ids[2], *sorted(ids[:2], reverse=True)]
        assert set(body["data"][0]) == PURCHASE_KEYS
    first = (
        await client.get("/api/v1/purchases", token=admin.token, params={"user_id": user.id, "merchant_id": merchant_a})
    ).json()
    assert [p["id"] for p in first["data"]] == [ids[0]] and first["pagination"]["total"] == 1
    assert first["data"][0]["merchant_name"].startswith("Shop-")
    assert first["data"][0]["cashback_amount"] == "0.50" and first["data"][0]["cashback_status"] == "pending"
    paged = (await client.get("/api/v1/purchases", token=admin.token, params={"offset": 1, "limit": 1})).json()
    assert paged["pagination"] == {"offset": 1, "limit": 1, "total": 3} and len(paged["data"]) == 1
    past = (await client.get("/api/v1/purchases", token=admin.token, params={"offset": 10})).json()
    assert past == {"data": [], "pagination": {"offset": 10, "limit": 10, "total": 3}}
    pending = (await client.get("/api/v1/purchases", token=admin.token, params={"status": "confirmed"})).json()
    assert pending["pagination"]["total"] == 0


async def test_admin_list_date_range_is_inclusive_in_utc_days(client, conn, user, admin):
    merchant_id, _ = await make_shop(conn)
    old = (await ingest(client, user, merchant_id)).json()["id"]
    new = (await ingest(client, user, merchant_id)).json()["id"]
    await conn.execute("UPDATE purchases SET created_at = '2026-01-10T23:59:59.999+00:00' WHERE id = $1", old)
    await conn.execute("UPDATE purchases SET created_at = '2026-01-11T00:00:00+00:00' WHERE id = $1", new)
    got = lambda params: client.get("/api/v1/purchases", token=admin.token, params=params)  # noqa: E731
    assert [p["id"] for p in (await got({"start_date": "2026-01-11"})).json()["data"]] == [new]
    assert [p["id"] for p in (await got({"end_date": "2026-01-10"})).json()["data"]] == [old]
    both = (await got({"start_date": "2026-01-10", "end_date": "2026-01-11"})).json()
    assert [p["id"] for p in both["data"]] == [new, old]


async def test_admin_list_query_errors(client, conn, admin, user):
    bad = await client.get(
        "/api/v1/purchases",
        token=admin.token,
        params={"start_date": "2026-02-02", "end_date": "2026-02-01", "limit": "0", "user_id": "x"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    fields = sorted(v["field"] for v in bad.json()["error"]["details"]["violations"])
    assert fields == ["limit", "start_date", "user_id"]
    status = await client.get("/api/v1/purchases", token=admin.token, params={"status": "bogus"})
    assert status.status_code == 422
    assert status.json()["error"] == {
        "code": "INVALID_PURCHASE_STATUS",
        "message": STATUS_MESSAGE,
        "details": {"allowed_values": ["pending", "confirmed", "rejected", "reversed"]},
    }
    forbidden = await client.get("/api/v1/purchases", token=user.token)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["details"] == {"required_role": "admin"}
    assert (await client.get("/api/v1/purchases")).status_code == 401


async def test_own_list_holds_only_the_callers_purchases(client, conn, user, make_account):
    other = await make_account()
    ids, *_ = await _three_purchases(client, conn, user, other)
    for path in ("/api/v1/users/me/purchases", "/api/v1/users/me/purchases/"):
        body = (await client.get(path, token=user.token)).json()
        assert [p["id"] for p in body["data"]] == [ids[2], ids[0]]
        assert body["pagination"] == {"offset": 0, "limit": 10, "total": 2}
    await conn.execute("UPDATE purchases SET status = 'confirmed' WHERE id = $1", ids[0])
    confirmed = (
        await client.get("/api/v1/users/me/purchases", token=user.token, params={"status": "confirmed"})
    ).json()
    assert [p["id"] for p in confirmed["data"]] == [ids[0]]
    bogus = await client.get("/api/v1/users/me/purchases", token=user.token, params={"status": "bogus"})
    assert bogus.status_code == 422 and bogus.json()["error"]["message"] == STATUS_MESSAGE
    limit = await client.get("/api/v1/users/me/purchases", token=user.token, params={"limit": "101"})
    assert limit.status_code == 422 and limit.json()["error"]["details"]["violations"][0]["field"] == "limit"


async def test_details_for_owner_and_admin_only(client, conn, user, admin, make_account):
    other = await make_account()
    merchant_id, offer_id = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "75.00", external_id="detail-1")).json()["id"]
    for account in (user, admin):
        for path in (f"/api/v1/purchases/{purchase_id}", f"/api/v1/purchases/{purchase_id}/"):
            response = await client.get(path, token=account.token)
            assert response.status_code == 200
            body = response.json()
            assert body["id"] == purchase_id and body["external_id"] == "detail-1"
            assert body["user_id"] == user.id and body["offer_id"] == offer_id and body["currency"] == "EUR"
            assert body["amount"] == "75.00" and body["cashback_amount"] == "3.75"
    denied = await client.get(f"/api/v1/purchases/{purchase_id}", token=other.token)
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "FORBIDDEN",
        "message": "You do not have permission to view this purchase. Purchase belongs to another user.",
        "details": {"purchase_id": purchase_id},
    }


async def test_details_say_what_the_list_says_field_for_field(client, conn, user, admin):
    """The details (a queryset) and the list (one raw page) describe a purchase the same way."""
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "40.00", external_id="detail-vs-list")).json()["id"]
    listed = (await client.get("/api/v1/users/me/purchases?limit=100", token=user.token)).json()["data"]
    (entry,) = [item for item in listed if item["id"] == purchase_id]
    for account in (user, admin):
        details = (await client.get(f"/api/v1/purchases/{purchase_id}", token=account.token)).json()
        assert details == entry and set(details) == PURCHASE_KEYS
        assert details["merchant_name"] and details["cashback_status"] == "pending"


@pytest.mark.parametrize("raw", [str(uuid.uuid4()), "not-a-uuid"])
async def test_unknown_or_malformed_purchase_is_404(client, user, raw):
    response = await client.get(f"/api/v1/purchases/{raw}", token=user.token)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "NOT_FOUND",
        "message": f"Purchase with ID '{raw}' does not exist.",
        "details": {"resource_type": "purchase", "resource_id": raw},
    }

"""GET /offers, /offers/active and /offers/{id} (API.md §3.4)."""

import uuid

import pytest

from tests.integration.merchants.factory import days, error_of, fields_of, insert_merchant, insert_offer, today


async def arrange_catalogue(conn):
    """Offers of every kind; returns name -> offer id."""
    shop = await insert_merchant(conn, "shop")
    apex = await insert_merchant(conn, "Apex")
    zulu = await insert_merchant(conn, "zulu")
    closed = await insert_merchant(conn, "Closed", active=False)
    old = await insert_merchant(conn, "old")
    soon = await insert_merchant(conn, "Soon")
    edge = await insert_merchant(conn, "edge")
    return {
        "shop": await insert_offer(conn, shop, percentage="5.00", start=days(-30), end=days(300), cap="50.00"),
        "apex": await insert_offer(conn, apex, percentage="0", fixed_amount="3.00", start=days(-5), end=days(5)),
        "zulu": await insert_offer(conn, zulu, percentage="2.50", start=days(-1), end=days(1)),
        "edge": await insert_offer(conn, edge, percentage="1.00", start=today(), end=today()),
        "shop_old": await insert_offer(conn, shop, active=False, start=days(-400), end=days(-35)),
        "closed": await insert_offer(conn, closed, start=days(-30), end=days(300)),
        "expired": await insert_offer(conn, old, start=days(-60), end=days(-1)),
        "future": await insert_offer(conn, soon, start=days(1), end=days(60)),
    }


@pytest.mark.parametrize("path", ["/api/v1/offers/active", "/api/v1/offers/active/"])
async def test_active_lists_only_offers_valid_today_by_merchant_name(client, conn, user, path):
    offers = await arrange_catalogue(conn)
    response = await client.get(path, token=user.token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [o["id"] for o in body["data"]] == [offers["apex"], offers["edge"], offers["shop"], offers["zulu"]]
    assert body["pagination"] == {"offset": 0, "limit": 20, "total": 4}
    apex, shop = body["data"][0], body["data"][2]
    assert apex == {
        "id": offers["apex"],
        "merchant_id": apex["merchant_id"],
        "merchant_name": "Apex",
        "cashback_type": "fixed",
        "cashback_value": 3.0,
        "monthly_cap": 50.0,
        "start_date": str(days(-5)),
        "end_date": str(days(5)),
    }
    assert (shop["cashback_type"], shop["cashback_value"], shop["merchant_name"]) == ("percent", 5.0, "shop")


@pytest.mark.parametrize(
    "params, names, total",
    [
        ({"limit": "2"}, ["apex", "edge"], 4),
        ({"offset": "3", "limit": "2"}, ["zulu"], 4),
        ({"offset": "4"}, [], 4),
        ({"offset": "100", "limit": "100"}, [], 4),
    ],
)
async def test_active_pages(client, conn, user, params, names, total):
    offers = await arrange_catalogue(conn)
    response = await client.get("/api/v1/offers/active", token=user.token, params=params)
    assert [o["id"] for o in response.json()["data"]] == [offers[n] for n in names]
    assert response.json()["pagination"]["total"] == total


async def test_active_ties_on_merchant_name_order_by_id(client, conn, user):
    """Two merchants can't share a name, so build the tie from many pages and check it is stable and complete."""
    ids = []
    for i in range(30):
        ids.append(await insert_offer(conn, await insert_merchant(conn, f"m{i:02d}")))
    first = (await client.get("/api/v1/offers/active", token=user.token, params={"limit": 17})).json()
    rest = (await client.get("/api/v1/offers/active", token=user.token, params={"offset": 17, "limit": 17})).json()
    assert [o["id"] for o in first["data"] + rest["data"]] == ids


@pytest.mark.parametrize(
    "params, fields", [({"limit": "0"}, ["limit"]), ({"offset": "-3", "limit": "500"}, ["offset", "limit"])]
)
async def test_active_bad_pagination_is_422(client, user, params, fields):
    response = await client.get("/api/v1/offers/active", token=user.token, params=params)
    assert response.status_code == 422 and fields_of(response) == fields


async def test_offer_lists_need_a_token(client):
    for path in ["/api/v1/offers", "/api/v1/offers/active", f"/api/v1/offers/{uuid.uuid4()}"]:
        response = await client.get(path)
        assert response.status_code == 401 and error_of(response)["code"] == "INVALID_TOKEN"


# -- GET /offers -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/offers", "/api/v1/offers/"])
async def test_list_includes_everything_sorted_by_start_date_desc(client, conn, user, path):
    offers = await arrange_catalogue(conn)
    response = await client.get(path, token=user.token)
    assert response.status_code == 200
    data = response.json()["data"]
    assert response.json()["pagination"] == {"offset": 0, "limit": 20, "total": 8}
    keys = [(o["start_date"], o["id"]) for o in data]
    assert keys == sorted(keys, key=lambda k: (-int(k[0].replace("-", "")), k[1]))
    by_id = {o["id"]: o for o in data}
    assert by_id[offers["shop_old"]]["status"] == "inactive"
    assert set(by_id[offers["apex"]]) == {
        "id",
        "merchant_id",
        "cashback_type",
        "cashback_value",
        "start_date",
        "end_date",
        "monthly_cap_per_user",
        "status",
    }
    assert by_id[offers["apex"]]["monthly_cap_per_user"] == 50.0


async def test_list_orders_same_start_date_by_id(client, conn, user):
    ids = sorted([await insert_offer(conn, await insert_merchant(conn), start=days(-3)) for _ in range(5)])
    response = await client.get("/api/v1/offers", token=user.token)
    assert [o["id"] for o in response.json()["data"]] == ids


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "inactive"}, {"shop_old"}),
        ({"status": "active", "date_from": "TODAY", "date_to": "TODAY"}, {"shop", "apex", "zulu", "edge", "closed"}),
        ({"date_from": "P1"}, {"shop", "apex", "zulu", "closed", "future"}),
        ({"date_to": "M31"}, {"shop_old", "expired"}),
        ({"date_from": "M35", "date_to": "M35"}, {"shop_old", "expired"}),
        ({"date_from": "M36", "date_to": "M31"}, {"shop_old", "expired"}),
    ],
)
async def test_list_filters_overlap_and_combine(client, conn, user, params, expected):
    offers = await arrange_catalogue(conn)
    symbols = {"TODAY": today(), "P1": days(1), "M31": days(-31), "M35": days(-35), "M36": days(-36)}
    query = {k: str(symbols.get(v, v)) for k, v in params.items()}
    response = await client.get("/api/v1/offers", token=user.token, params=query)
    assert response.status_code == 200, response.text
    assert {o["id"] for o in response.json()["data"]} == {offers[n] for n in expected}
    assert response.json()["pagination"]["total"] == len(expected)


async def test_list_filters_by_merchant(client, conn, user):
    await arrange_catalogue(conn)
    merchant_id = await insert_merchant(conn, "Target")
    first = await insert_offer(conn, merchant_id, active=False, start=days(-20))
    second = await insert_offer(conn, merchant_id, start=days(-10))
    response = await client.get("/api/v1/offers", token=user.token, params={"merchant_id": merchant_id})
    assert [o["id"] for o in response.json()["data"]] == [second, first]
    beyond = await client.get("/api/v1/offers", token=user.token, params={"merchant_id": merchant_id, "offset": 5})
    assert beyond.json() == {"data": [], "pagination": {"offset": 5, "limit": 20, "total": 2}}


@pytest.mark.parametrize(
    "params, violations",
    [
        ({"status": "expired"}, ["status"]),
        ({"merchant_id": "123"}, ["merchant_id"]),
        ({"date_from": "2026-13-01"}, ["date_from"]),
        ({"date_to": "yesterday"}, ["date_to"]),
        ({"date_from": "2026-05-02", "date_to": "2026-05-01"}, ["date_from"]),
        (
            {"date_from": "2026-05-02", "date_to": "2026-05-01", "limit": "0", "status": "x"},
            ["limit", "status", "date_from"],
        ),
        ({"date_from": "2026-05-02", "date_to": "nope"}, ["date_to"]),
    ],
)
async def test_list_bad_query_reports_every_violation(client, user, params, violations):
    response = await client.get("/api/v1/offers", token=user.token, params=params)
    assert response.status_code == 422
    assert sorted(fields_of(response)) == sorted(violations)


async def test_date_range_violation_text(client, user):
    response = await client.get(
        "/api/v1/offers", token=user.token, params={"date_from": "2026-05-02", "date_to": "2026-05-01"}
    )
    assert error_of(response)["details"]["violations"] == [
        {
            "field": "date_from",
            "reason": "date_from must not be after date_to. Got date_from='2026-05-02', date_to='2026-05-01'.",
        }
    ]


async def test_offers_name_their_merchant_so_a_user_can_record_a_purchase(client, conn, user):
    """/merchants is admin-only: the offer is where a client learns the merchant_id a purchase needs."""
    merchant = await insert_merchant(conn, "Bookshop")
    offer = await insert_offer(conn, merchant, percentage="10.00")
    listed = (await client.get("/api/v1/offers/active", token=user.token)).json()["data"]
    assert [(o["id"], o["merchant_id"]) for o in listed] == [(offer, merchant)]
    details = await client.get(f"/api/v1/offers/{offer}", token=user.token)
    assert details.json()["merchant_id"] == merchant
    purchase = {
        "external_id": f"order-{uuid.uuid4()}",
        "user_id": user.id,
        "merchant_id": details.json()["merchant_id"],
        "amount": "20.00",
        "currency": "EUR",
    }
    recorded = await client.post("/api/v1/purchases", json=purchase, token=user.token)
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["cashback_amount"] == "2.00"


# -- GET /offers/{id} ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["", "/"])
async def test_details_for_a_valid_offer(client, conn, user, suffix):
    offers = await arrange_catalogue(conn)
    response = await client.get(f"/api/v1/offers/{offers['shop']}{suffix}", token=user.token)
    assert response.status_code == 200
    assert response.json() == {
        "id": offers["shop"],
        "merchant_id": response.json()["merchant_id"],
        "merchant_name": "shop",
        "cashback_type": "percent",
        "cashback_value": 5.0,
        "monthly_cap": 50.0,
        "start_date": str(days(-30)),
        "end_date": str(days(300)),
        "status": "active",
    }


async def test_details_ignore_the_date_window(client, conn, user):
    offers = await arrange_catalogue(conn)
    for name in ("expired", "future"):
        response = await client.get(f"/api/v1/offers/{offers[name]}", token=user.token)
        assert response.status_code == 200 and response.json()["status"] == "active"


@pytest.mark.parametrize(
    "name, reason",
    [
        ("shop_old", "This offer is inactive. Only admin users can view inactive offers."),
        (
            "closed",
            "The merchant for this offer is inactive. Only admin users can view offers from inactive merchants.",
        ),
    ],
)
async def test_details_of_hidden_offers_are_403_for_users_and_200_for_admins(client, conn, user, admin, name, reason):
    offers = await arrange_catalogue(conn)
    response = await client.get(f"/api/v1/offers/{offers[name]}", token=user.token)
    assert response.status_code == 403
    assert error_of(response) == {
        "code": "FORBIDDEN",
        "message": "You do not have permission to view this offer.",
        "details": {"resource_type": "offer", "resource_id": offers[name], "reason": reason},
    }
    as_admin = await client.get(f"/api/v1/offers/{offers[name]}", token=admin.token)
    assert as_admin.status_code == 200
    assert as_admin.json()["status"] == ("inactive" if name == "shop_old" else "active")


async def test_inactive_offer_of_inactive_merchant_reports_the_offer(client, conn, user):
    merchant_id = await insert_merchant(conn, active=False)
    offer_id = await insert_offer(conn, merchant_id, active=False)
    response = await client.get(f"/api/v1/offers/{offer_id}", token=user.token)
    assert error_of(response)["details"]["reason"].startswith("This offer is inactive.")


@pytest.mark.parametrize("raw_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
async def test_details_of_unknown_offer_is_404(client, user, raw_id):
    response = await client.get(f"/api/v1/offers/{raw_id}", token=user.token)
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "NOT_FOUND",
        "message": f"Offer with ID '{raw_id}' does not exist.",
        "details": {"resource_type": "offer", "resource_id": raw_id},
    }


async def test_delete_on_offers_is_405(client, admin):
    response = await client.delete("/api/v1/offers", token=admin.token)
    assert response.status_code == 405 and error_of(response)["code"] == "METHOD_NOT_ALLOWED"
    assert "allow" in response.headers

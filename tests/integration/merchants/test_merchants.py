"""POST/GET /merchants and PATCH /merchants/{id}/status (API.md §3.3)."""

import asyncio
import json
import uuid
from decimal import Decimal

import pytest

from server.app import create_app
from tests.conftest import with_settings
from tests.integration.merchants.factory import audit_rows, error_of, fields_of, insert_merchant
from tests.support.client import AppClient

PATHS = ["/api/v1/merchants", "/api/v1/merchants/"]


@pytest.mark.parametrize("path", PATHS)
async def test_create_returns_merchant_and_audits_it(client, conn, admin, path):
    response = await client.post(
        path, token=admin.token, json={"name": "  Acme  ", "default_cashback_percentage": 5.0, "active": False}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {"id": body["id"], "name": "Acme", "default_cashback_percentage": 5.0, "active": False}
    stored = await conn.fetchrow(
        "SELECT name, default_cashback_percentage, active FROM merchants WHERE id = $1", body["id"]
    )
    assert stored["default_cashback_percentage"] == Decimal("5.00") and stored["name"] == "Acme"
    [row] = await audit_rows(conn, body["id"])
    assert (row["actor_type"], row["actor_id"], row["action"], row["resource_type"]) == (
        "admin",
        admin.id,
        "MERCHANT_CREATED",
        "merchant",
    )
    assert json.loads(row["details"]) == {"name": "Acme", "default_cashback_percentage": 5.0, "active": False}


@pytest.mark.parametrize("raw, rendered", [("7.25", 7.25), (0, 0.0), (20, 20.0), ("1E+1", 10.0)])
async def test_percentage_accepts_numbers_and_numeric_strings(client, admin, raw, rendered):
    response = await client.post(PATHS[0], token=admin.token, json={"name": "Shop", "default_cashback_percentage": raw})
    assert response.status_code == 201, response.text
    assert response.json()["default_cashback_percentage"] == rendered
    assert response.json()["active"] is True


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"default_cashback_percentage": 5}, ["name"]),
        ({"name": "   ", "default_cashback_percentage": 5}, ["name"]),
        ({"name": "x" * 256, "default_cashback_percentage": 5}, ["name"]),
        ({"name": 7, "default_cashback_percentage": 5}, ["name"]),
        ({"name": "A"}, ["default_cashback_percentage"]),
        ({"name": "A", "default_cashback_percentage": "abc"}, ["default_cashback_percentage"]),
        ({"name": "A", "default_cashback_percentage": 1.005}, ["default_cashback_percentage"]),
        ({"name": "A", "default_cashback_percentage": True}, ["default_cashback_percentage"]),
        ({"name": "A", "default_cashback_percentage": 5, "active": "yes"}, ["active"]),
        (
            {"name": "", "default_cashback_percentage": None, "active": 1},
            ["name", "default_cashback_percentage", "active"],
        ),
    ],
)
async def test_create_schema_violations_are_422_together(client, admin, body, fields):
    response = await client.post(PATHS[0], token=admin.token, json=body)
    assert response.status_code == 422
    assert error_of(response)["code"] == "VALIDATION_ERROR"
    assert error_of(response)["message"] == "Request validation failed."
    assert fields_of(response) == fields


@pytest.mark.parametrize("percentage", [-1, "20.01", 25, 100])
async def test_percentage_out_of_range_is_400(client, conn, admin, percentage):
    response = await client.post(
        PATHS[0], token=admin.token, json={"name": "Acme", "default_cashback_percentage": percentage}
    )
    assert response.status_code == 400
    assert error_of(response) == {
        "code": "VALIDATION_ERROR",
        "message": "Validation failed for request body.",
        "details": {
            "violations": [
                {
                    "field": "default_cashback_percentage",
                    "reason": "Default cashback percentage must be between 0 and 20.0.",
                }
            ]
        },
    }
    assert await conn.fetchval("SELECT count(*) FROM merchants") == 0


async def test_percentage_limit_follows_the_setting(settings, admin):
    app_client = AppClient(create_app(with_settings(settings, max_cashback_percentage=Decimal("12.5"))))
    await app_client.start()
    try:
        response = await app_client.post(
            PATHS[0], token=admin.token, json={"name": "Acme", "default_cashback_percentage": 13}
        )
    finally:
        await app_client.stop()
    assert error_of(response)["details"]["violations"][0]["reason"] == (
        "Default cashback percentage must be between 0 and 12.5."
    )


async def test_range_rule_is_checked_before_the_name(client, conn, admin):
    await insert_merchant(conn, "Acme")
    response = await client.post(PATHS[0], token=admin.token, json={"name": "acme", "default_cashback_percentage": 50})
    assert response.status_code == 400


async def test_name_taken_ignoring_case(client, conn, admin):
    await insert_merchant(conn, "Acme-1")
    response = await client.post(PATHS[0], token=admin.token, json={"name": "aCME-1", "default_cashback_percentage": 5})
    assert response.status_code == 409
    assert error_of(response) == {
        "code": "MERCHANT_NAME_TAKEN",
        "message": "A merchant named 'aCME-1' already exists.",
        "details": {"name": "aCME-1"},
    }
    assert await conn.fetchval("SELECT count(*) FROM audit_logs") == 0


async def test_concurrent_creations_of_one_name_give_one_201(client, conn, admin):
    names = ["Racer", "RACER", "racer", "rAcEr", "Racer ", " racer", "RaceR", "raceR", "RACEr", "racER"]
    responses = await asyncio.gather(
        *[
            client.post(PATHS[0], token=admin.token, json={"name": name, "default_cashback_percentage": 5})
            for name in names
        ]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9, [r.text for r in responses]
    assert all(error_of(r)["code"] == "MERCHANT_NAME_TAKEN" for r in responses if r.status_code == 409)
    assert await conn.fetchval("SELECT count(*) FROM merchants") == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'MERCHANT_CREATED'") == 1


async def test_unique_index_answers_409_when_the_precheck_is_passed(client, conn, admin, monkeypatch):
    """Force the race path: the pre-check sees nothing, the unique index still refuses."""
    from server.merchants import service

    await insert_merchant(conn, "Indexed")
    assert await service.name_in_use("INDEXED")

    async def blind_precheck(name):
        return False

    monkeypatch.setattr(service, "name_in_use", blind_precheck)
    response = await client.post(
        PATHS[0], token=admin.token, json={"name": "INDEXED", "default_cashback_percentage": 5}
    )
    assert response.status_code == 409
    assert error_of(response)["details"] == {"name": "INDEXED"}


@pytest.mark.parametrize(
    "method, path, body, expected_status, expected_code",
    [
        ("post", "/api/v1/merchants", {"name": "A", "default_cashback_percentage": 1}, 401, "INVALID_TOKEN"),
        ("get", "/api/v1/merchants", None, 401, "INVALID_TOKEN"),
        ("patch", f"/api/v1/merchants/{uuid.uuid4()}/status", {"status": "active"}, 401, "INVALID_TOKEN"),
    ],
)
async def test_anonymous_calls_are_401(client, method, path, body, expected_status, expected_code):
    kwargs = {"json": body} if body is not None else {}
    response = await getattr(client, method)(path, **kwargs)
    assert response.status_code == expected_status
    assert error_of(response)["code"] == expected_code
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/api/v1/merchants/", {"name": "A", "default_cashback_percentage": 1}),
        ("get", "/api/v1/merchants/", None),
        ("patch", "/api/v1/merchants/{id}/status/", {"status": "active"}),
    ],
)
async def test_users_are_403(client, conn, user, method, path, body):
    merchant_id = await insert_merchant(conn)
    kwargs = {"json": body} if body is not None else {}
    response = await getattr(client, method)(path.format(id=merchant_id), token=user.token, **kwargs)
    assert response.status_code == 403
    assert error_of(response) == {
        "code": "FORBIDDEN",
        "message": "You do not have permission to perform this action.",
        "details": {"required_role": "admin"},
    }


async def test_media_type_and_malformed_json(client, admin):
    wrong_type = await client.post(
        PATHS[0], token=admin.token, content=b"name=A", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert error_of(wrong_type)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    broken = await client.post(
        PATHS[0], token=admin.token, content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and error_of(broken)["code"] == "MALFORMED_JSON"
    not_object = await client.post(PATHS[0], token=admin.token, json=[1])
    assert not_object.status_code == 422 and fields_of(not_object) == ["body"]
    missing = await client.post(PATHS[0], token=admin.token)
    assert missing.status_code == 422 and fields_of(missing) == ["body"]


# -- list ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
async def test_list_sorted_by_name_ignoring_case_then_id(client, conn, admin, path):
    for name, active in [("beta", True), ("Alpha", False), ("gamma", True), ("ALPHA2", True)]:
        await insert_merchant(conn, name, active)
    response = await client.get(path, token=admin.token)
    assert response.status_code == 200
    body = response.json()
    assert [m["name"] for m in body["data"]] == ["Alpha", "ALPHA2", "beta", "gamma"]
    assert body["pagination"] == {"offset": 0, "limit": 20, "total": 4}
    assert set(body["data"][0]) == {"id", "name", "default_cashback_percentage", "active"}
    assert body["data"][0]["default_cashback_percentage"] == 5.0


@pytest.mark.parametrize(
    "params, names, total",
    [
        ({"active": "true"}, ["ALPHA2", "beta", "gamma"], 3),
        ({"active": "No"}, ["Alpha"], 1),
        ({"active": "1", "limit": "2"}, ["ALPHA2", "beta"], 3),
        ({"offset": "1", "limit": "2"}, ["ALPHA2", "beta"], 4),
        ({"offset": "10"}, [], 4),
        ({"offset": "10", "active": "off"}, [], 1),
    ],
)
async def test_list_filters_and_pages(client, conn, admin, params, names, total):
    for name, active in [("beta", True), ("Alpha", False), ("gamma", True), ("ALPHA2", True)]:
        await insert_merchant(conn, name, active)
    response = await client.get(PATHS[0], token=admin.token, params=params)
    assert response.status_code == 200
    assert [m["name"] for m in response.json()["data"]] == names
    assert response.json()["pagination"]["total"] == total


async def test_list_ties_on_name_never_happen_but_id_breaks_the_order(client, conn, admin):
    ids = sorted([await insert_merchant(conn, f"m{i:02d}") for i in range(25)])
    first = (await client.get(PATHS[0], token=admin.token)).json()
    second = (await client.get(PATHS[0], token=admin.token, params={"offset": 20})).json()
    assert len(first["data"]) == 20 and len(second["data"]) == 5
    assert sorted(m["id"] for m in first["data"] + second["data"]) == ids


@pytest.mark.parametrize(
    "params, fields",
    [
        ({"limit": "0"}, ["limit"]),
        ({"limit": "101"}, ["limit"]),
        ({"offset": "-1"}, ["offset"]),
        ({"offset": "x", "limit": "1.5"}, ["offset", "limit"]),
        ({"active": "maybe"}, ["active"]),
    ],
)
async def test_list_bad_query_is_422(client, admin, params, fields):
    response = await client.get(PATHS[0], token=admin.token, params=params)
    assert response.status_code == 422
    assert fields_of(response) == fields


# -- status ----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["", "/"])
async def test_status_change_is_audited_and_idempotent(client, conn, admin, suffix):
    merchant_id = await insert_merchant(conn, active=True)
    path = f"/api/v1/merchants/{merchant_id}/status{suffix}"
    off = await client.patch(path, token=admin.token, json={"status": "inactive"})
    assert off.status_code == 200 and off.json() == {"id": merchant_id, "status": "inactive"}
    again = await client.patch(path, token=admin.token, json={"status": "inactive"})
    assert again.status_code == 200 and again.json() == {"id": merchant_id, "status": "inactive"}
    on = await client.patch(path, token=admin.token, json={"status": "active"})
    assert on.json() == {"id": merchant_id, "status": "active"}
    assert await conn.fetchval("SELECT active FROM merchants WHERE id = $1", merchant_id) is True
    rows = await audit_rows(conn, merchant_id)
    assert [(r["action"], json.loads(r["details"])) for r in rows] == [
        ("MERCHANT_STATUS_CHANGED", {"from": "active", "to": "inactive"}),
        ("MERCHANT_STATUS_CHANGED", {"from": "inactive", "to": "active"}),
    ]
    assert all(r["actor_id"] == admin.id and r["actor_type"] == "admin" for r in rows)


@pytest.mark.parametrize("raw_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_status_of_unknown_merchant_is_404(client, admin, raw_id):
    response = await client.patch(f"/api/v1/merchants/{raw_id}/status", token=admin.token, json={"status": "active"})
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "NOT_FOUND",
        "message": f"Merchant with ID '{raw_id}' does not exist.",
        "details": {"resource_type": "merchant", "resource_id": raw_id},
    }


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"status": "paused"}, ["status"]),
        ({}, ["status"]),
        ({"status": "ACTIVE"}, ["status"]),
        ({"status": None}, ["status"]),
    ],
)
async def test_status_body_is_validated(client, conn, admin, body, fields):
    merchant_id = await insert_merchant(conn)
    response = await client.patch(f"/api/v1/merchants/{merchant_id}/status", token=admin.token, json=body)
    assert response.status_code == 422
    assert fields_of(response) == fields


async def test_wrong_method_is_405(client, admin):
    response = await client.delete(PATHS[0], token=admin.token)
    assert response.status_code == 405
    assert error_of(response)["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_page_size_settings_apply_to_the_catalogue_lists(settings, admin):
    app_client = AppClient(create_app(with_settings(settings, default_page_size=3, max_page_size=5)))
    await app_client.start()
    try:
        for path in [
            "/api/v1/merchants",
            "/api/v1/offers",
            "/api/v1/offers/active",
            "/api/v1/feature-flags",
            "/api/v1/audit-logs",
        ]:
            default = await app_client.get(path, token=admin.token)
            assert default.json()["pagination"]["limit"] == 3, path
            too_big = await app_client.get(path, token=admin.token, params={"limit": 6})
            assert too_big.status_code == 422 and fields_of(too_big) == ["limit"], path
    finally:
        await app_client.stop()

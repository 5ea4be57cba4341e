"""POST /offers (API.md §3.4): schema, every offer rule together, merchant checks, one active offer."""

import asyncio
import json
import uuid
from decimal import Decimal

import pytest

from tests.integration.merchants.factory import (
    audit_rows,
    days,
    error_of,
    fields_of,
    insert_merchant,
    insert_offer,
    today,
)

PATHS = ["/api/v1/offers", "/api/v1/offers/"]


def offer_body(merchant, **changes):
    body = {
        "merchant_id": merchant,
        "cashback_type": "percent",
        "cashback_value": 5.0,
        "start_date": str(today()),
        "end_date": str(days(30)),
        "monthly_cap": 20,
    }
    body.update(changes)
    return body


@pytest.mark.parametrize("path", PATHS)
async def test_create_percent_offer(client, conn, admin, path):
    merchant_id = await insert_merchant(conn)
    response = await client.post(path, token=admin.token, json=offer_body(merchant_id))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "id": body["id"],
        "merchant_id": merchant_id,
        "cashback_type": "percent",
        "cashback_value": 5.0,
        "start_date": str(today()),
        "end_date": str(days(30)),
        "monthly_cap_per_user": 20.0,
        "status": "active",
    }
    stored = await conn.fetchrow("SELECT * FROM offers WHERE id = $1", body["id"])
    assert (stored["percentage"], stored["fixed_amount"], stored["monthly_cap_per_user"], stored["active"]) == (
        Decimal("5.00"),
        None,
        Decimal("20.00"),
        True,
    )
    [row] = await audit_rows(conn, body["id"])
    assert (row["action"], row["actor_type"], row["actor_id"], row["resource_type"]) == (
        "OFFER_CREATED",
        "admin",
        admin.id,
        "offer",
    )
    assert json.loads(row["details"]) == {
        "merchant_id": merchant_id,
        "cashback_type": "percent",
        "cashback_value": 5.0,
        "start_date": str(today()),
        "end_date": str(days(30)),
        "monthly_cap": 20.0,
    }


async def test_create_fixed_offer(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    response = await client.post(
        PATHS[0],
        token=admin.token,
        json=offer_body(
            merchant_id, cashback_type="fixed", cashback_value="3.00", monthly_cap="12.50", end_date=str(today())
        ),
    )
    assert response.status_code == 201, response.text
    assert (
        response.json()["cashback_type"],
        response.json()["cashback_value"],
        response.json()["monthly_cap_per_user"],
    ) == ("fixed", 3.0, 12.5)
    stored = await conn.fetchrow("SELECT percentage, fixed_amount FROM offers WHERE id = $1", response.json()["id"])
    assert (stored["percentage"], stored["fixed_amount"]) == (Decimal("0.00"), Decimal("3.00"))


async def test_rates_and_caps_of_nineteen_digits_leave_exact_in_every_answer_and_in_the_audit_log(client, conn, admin):
    """NUMERIC(19,2) holds 19 digits and a binary float ~16: through a float, this cap came out as 1e+17
    and the audit log kept 100000000000000000 for good."""
    cap, fixed = "99999999999999999.99", "12345678901234567.89"
    merchant_id = await insert_merchant(conn)
    created = await client.post(
        PATHS[0],
        token=admin.token,
        json=offer_body(merchant_id, cashback_type="fixed", cashback_value=fixed, monthly_cap=cap),
    )
    assert created.status_code == 201, created.text
    exact = json.loads(created.text, parse_float=Decimal)
    assert (exact["cashback_value"], exact["monthly_cap_per_user"]) == (Decimal(fixed), Decimal(cap))
    offer_id = exact["id"]
    read = json.loads((await client.get(f"/api/v1/offers/{offer_id}", token=admin.token)).text, parse_float=Decimal)
    assert (read["cashback_value"], read["monthly_cap"]) == (Decimal(fixed), Decimal(cap))
    [row] = await audit_rows(conn, offer_id)
    assert (
        json.loads(row["details"], parse_float=Decimal)["cashback_value"],
        json.loads(row["details"], parse_float=Decimal)["monthly_cap"],
    ) == (Decimal(fixed), Decimal(cap))
    listed = await client.get(
        "/api/v1/audit-logs", token=admin.token, params={"resource_type": "offer", "resource_id": offer_id}
    )
    [entry] = json.loads(listed.text, parse_float=Decimal)["data"]
    assert (entry["details"]["cashback_value"], entry["details"]["monthly_cap"]) == (Decimal(fixed), Decimal(cap))
    # Ordinary values keep their usual form: 5 -> 5.0, 12.50 -> 12.5.
    usual = await client.post(
        PATHS[0],
        token=admin.token,
        json=offer_body(await insert_merchant(conn), cashback_value="5", monthly_cap="12.50"),
    )
    assert '"cashback_value":5.0' in usual.text and '"monthly_cap_per_user":12.5' in usual.text


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"cashback_value": 0}, [("cashback_value", "Percentage must be between 0 (exclusive) and 20.0 (inclusive).")]),
        (
            {"cashback_value": "20.01"},
            [("cashback_value", "Percentage must be between 0 (exclusive) and 20.0 (inclusive).")],
        ),
        ({"cashback_type": "fixed", "cashback_value": 0}, [("cashback_value", "Fixed amount must be greater than 0.")]),
        (
            {"cashback_type": "fixed", "cashback_value": -2},
            [("cashback_value", "Fixed amount must be greater than 0.")],
        ),
        ({"start_date": "YESTERDAY"}, [("start_date", "Start date must be today or a future date. Got: '{y}'.")]),
        (
            {"start_date": "IN10", "end_date": "IN9"},
            [("end_date", "End date must be after start date. Got start='{in10}', end='{in9}'.")],
        ),
        ({"monthly_cap": 0}, [("monthly_cap", "Monthly cap must be positive. Got: 0.0.")]),
        ({"monthly_cap": "-5.5"}, [("monthly_cap", "Monthly cap must be positive. Got: -5.5.")]),
        (
            {"cashback_value": 25, "start_date": "YESTERDAY", "end_date": "YESTERDAY2", "monthly_cap": 0},
            [
                ("cashback_value", "Percentage must be between 0 (exclusive) and 20.0 (inclusive)."),
                ("start_date", "Start date must be today or a future date. Got: '{y}'."),
                ("end_date", "End date must be after start date. Got start='{y}', end='{y2}'."),
                ("monthly_cap", "Monthly cap must be positive. Got: 0.0."),
            ],
        ),
    ],
)
async def test_every_failing_rule_is_reported_as_400(client, conn, admin, changes, expected):
    names = {"YESTERDAY": days(-1), "YESTERDAY2": days(-2), "IN10": days(10), "IN9": days(9)}
    merchant_id = await insert_merchant(conn)
    body = offer_body(
        merchant_id, **{k: str(names.get(v, v)) if isinstance(v, str) and v in names else v for k, v in changes.items()}
    )
    response = await client.post(PATHS[0], token=admin.token, json=body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["message"]) == ("VALIDATION_ERROR", "Validation failed for request body.")
    fill = {"y": days(-1), "y2": days(-2), "in10": days(10), "in9": days(9)}
    assert [(v["field"], v["reason"]) for v in error["details"]["violations"]] == [
        (field, reason.format(**fill)) for field, reason in expected
    ]
    assert await conn.fetchval("SELECT count(*) FROM offers") == 0


async def test_max_percentage_is_inclusive_and_fixed_has_no_upper_bound(client, conn, admin):
    first = await client.post(
        PATHS[0], token=admin.token, json=offer_body(await insert_merchant(conn), cashback_value=20)
    )
    assert first.status_code == 201
    second = await client.post(
        PATHS[0],
        token=admin.token,
        json=offer_body(await insert_merchant(conn), cashback_type="fixed", cashback_value=250),
    )
    assert second.status_code == 201 and second.json()["cashback_value"] == 250.0


@pytest.mark.parametrize(
    "changes, fields",
    [
        ({"merchant_id": "nope"}, ["merchant_id"]),
        ({"cashback_type": "percentage"}, ["cashback_type"]),
        ({"cashback_value": 1.005}, ["cashback_value"]),
        ({"cashback_value": "NaN"}, ["cashback_value"]),
        ({"start_date": "2026-02-30"}, ["start_date"]),
        ({"end_date": "tomorrow"}, ["end_date"]),
        ({"monthly_cap": False}, ["monthly_cap"]),
        ({"monthly_cap": None, "start_date": None}, ["start_date", "monthly_cap"]),
    ],
)
async def test_schema_violations_are_422(client, conn, admin, changes, fields):
    response = await client.post(PATHS[0], token=admin.token, json=offer_body(await insert_merchant(conn), **changes))
    assert response.status_code == 422
    assert fields_of(response) == fields


async def test_missing_fields_are_all_reported(client, admin):
    response = await client.post(PATHS[0], token=admin.token, json={})
    assert response.status_code == 422
    assert fields_of(response) == [
        "merchant_id",
        "cashback_type",
        "cashback_value",
        "start_date",
        "end_date",
        "monthly_cap",
    ]


async def test_unknown_merchant_is_404_after_the_rules(client, admin):
    missing = str(uuid.uuid4())
    response = await client.post(PATHS[0], token=admin.token, json=offer_body(missing))
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "NOT_FOUND",
        "message": f"Merchant with ID '{missing}' does not exist.",
        "details": {"resource_type": "merchant", "resource_id": missing},
    }
    rules_first = await client.post(PATHS[0], token=admin.token, json=offer_body(missing, monthly_cap=0))
    assert rules_first.status_code == 400


async def test_inactive_merchant_is_422(client, conn, admin):
    merchant_id = await insert_merchant(conn, active=False)
    response = await client.post(PATHS[0], token=admin.token, json=offer_body(merchant_id))
    assert response.status_code == 422
    assert error_of(response) == {
        "code": "MERCHANT_NOT_ACTIVE",
        "message": f"Cannot create offer for merchant '{merchant_id}'. Merchant is not active.",
        "details": {"merchant_id": merchant_id, "action": "Activate the merchant before creating offers."},
    }


async def test_second_active_offer_is_409_whatever_its_dates(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    existing = await insert_offer(conn, merchant_id, start=days(-400), end=days(-100))
    response = await client.post(PATHS[0], token=admin.token, json=offer_body(merchant_id))
    assert response.status_code == 409
    assert error_of(response) == {
        "code": "ACTIVE_OFFER_ALREADY_EXISTS",
        "message": f"An active offer already exists for merchant '{merchant_id}'. "
        "Deactivate the existing offer before creating a new one.",
        "details": {
            "merchant_id": merchant_id,
            "existing_offer_id": existing,
            "action": "Deactivate the existing offer before creating a new one.",
        },
    }
    await insert_offer(conn, await insert_merchant(conn), active=False)
    assert await conn.fetchval("SELECT count(*) FROM offers WHERE merchant_id = $1", merchant_id) == 1


async def test_inactive_offers_do_not_block_creation(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    await insert_offer(conn, merchant_id, active=False)
    response = await client.post(PATHS[0], token=admin.token, json=offer_body(merchant_id))
    assert response.status_code == 201


async def test_concurrent_creations_give_one_201(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    responses = await asyncio.gather(
        *[client.post(PATHS[0], token=admin.token, json=offer_body(merchant_id)) for _ in range(8)]
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7, [r.text for r in responses]
    winner = next(r.json()["id"] for r in responses if r.status_code == 201)
    assert all(error_of(r)["details"]["existing_offer_id"] == winner for r in responses if r.status_code == 409)
    assert await conn.fetchval("SELECT count(*) FROM offers WHERE merchant_id = $1", merchant_id) == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'OFFER_CREATED'") == 1


async def test_partial_unique_index_answers_409_when_the_precheck_is_passed(client, conn, admin, monkeypatch):
    from server.offers import service

    merchant_id = await insert_merchant(conn)
    existing = await insert_offer(conn, merchant_id)

    real = service._active_offer_id

    async def blind(merchant_id, tx=None):  # the pre-check, inside the transaction, sees nothing
        return None if tx is not None else await real(merchant_id)

    monkeypatch.setattr(service, "_active_offer_id", blind)
    response = await client.post(PATHS[0], token=admin.token, json=offer_body(merchant_id))
    assert response.status_code == 409
    assert error_of(response)["details"]["existing_offer_id"] == existing


@pytest.mark.parametrize("token_kind, status", [("none", 401), ("user", 403)])
async def test_create_requires_admin(client, conn, user, token_kind, status):
    token = user.token if token_kind == "user" else None
    response = await client.post(PATHS[0], token=token, json=offer_body(await insert_merchant(conn)))
    assert response.status_code == status

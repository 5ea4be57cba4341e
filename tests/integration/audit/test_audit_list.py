"""GET /audit-logs (API.md §3.9): filters combined with AND, newest first, strict query validation."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.merchants.factory import error_of, fields_of

PATH = "/api/v1/audit-logs"
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


async def arrange(conn, admin_id):
    """Five rows at known times; returns their ids oldest first."""
    merchant, offer, purchase = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    rows = [
        (T0, "admin", admin_id, "MERCHANT_CREATED", "merchant", merchant, '{"name": "Acme"}'),
        (
            T0 + timedelta(minutes=1),
            "admin",
            admin_id,
            "MERCHANT_STATUS_CHANGED",
            "merchant",
            merchant,
            '{"from": "inactive", "to": "active"}',
        ),
        (T0 + timedelta(minutes=2), "admin", admin_id, "OFFER_CREATED", "offer", offer, '{"cashback_value": 5.0}'),
        (
            T0 + timedelta(minutes=3),
            "system",
            None,
            "PURCHASE_CONFIRMED",
            "purchase",
            purchase,
            '{"amount": "75.00", "cashback_amount": "3.75"}',
        ),
        (
            T0 + timedelta(minutes=3),
            "admin",
            admin_id,
            "MERCHANT_STATUS_CHANGED",
            "merchant",
            merchant,
            '{"from": "active", "to": "inactive"}',
        ),
    ]
    ids = []
    for occurred_at, actor_type, actor_id, action, resource_type, resource_id, details in rows:
        ids.append(
            str(
                await conn.fetchval(
                    "INSERT INTO audit_logs (occurred_at, actor_type, actor_id, action, resource_type, resource_id, details) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id",
                    occurred_at,
                    actor_type,
                    actor_id,
                    action,
                    resource_type,
                    resource_id,
                    details,
                )
            )
        )
    return ids, merchant, purchase


def newest_first(ids):
    """Rows 3 and 4 share a timestamp: id DESC breaks the tie."""
    tail = sorted(ids[3:], reverse=True)
    return tail + ids[2::-1]


@pytest.mark.parametrize("slash", ["", "/"])
async def test_list_newest_first_with_every_field(client, conn, admin, slash):
    ids, merchant, purchase = await arrange(conn, admin.id)
    response = await client.get(PATH + slash, token=admin.token)
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body["data"]] == newest_first(ids)
    assert body["pagination"] == {"offset": 0, "limit": 20, "total": 5}
    confirmed = next(row for row in body["data"] if row["action"] == "PURCHASE_CONFIRMED")
    assert confirmed == {
        "id": ids[3],
        "occurred_at": "2026-03-04T10:03:00+00:00",
        "actor_type": "system",
        "actor_id": None,
        "action": "PURCHASE_CONFIRMED",
        "resource_type": "purchase",
        "resource_id": purchase,
        "outcome": "success",
        "details": {"amount": "75.00", "cashback_amount": "3.75"},
    }


@pytest.mark.parametrize(
    "params, picks",
    [
        ({"action": "MERCHANT_STATUS_CHANGED"}, [4, 1]),
        ({"resource_type": "merchant"}, [4, 1, 0]),
        ({"resource_type": "merchant", "action": "MERCHANT_CREATED"}, [0]),
        ({"resource_type": "offer", "action": "MERCHANT_CREATED"}, []),
        ({"from": "2026-03-04T10:01:00+00:00"}, [3, 4, 2, 1]),
        ({"to": "2026-03-04T10:01:00Z"}, [0]),
        ({"from": "2026-03-04T11:01:00+01:00", "to": "2026-03-04T10:03:00+00:00"}, [2, 1]),
        ({"from": "2026-03-04T10:02:00+00:00", "to": "2026-03-04T10:02:00+00:00"}, []),
        ({"limit": "2", "offset": "1"}, "page"),
    ],
)
async def test_filters_combine(client, conn, admin, params, picks):
    ids, merchant, purchase = await arrange(conn, admin.id)
    response = await client.get(PATH, token=admin.token, params=params)
    assert response.status_code == 200, response.text
    got = [row["id"] for row in response.json()["data"]]
    if picks == "page":
        assert got == newest_first(ids)[1:3] and response.json()["pagination"]["total"] == 5
        return
    expected = [ids[i] for i in picks]
    assert sorted(got) == sorted(expected)
    assert [row["occurred_at"] for row in response.json()["data"]] == sorted(
        (row["occurred_at"] for row in response.json()["data"]), reverse=True
    )
    assert response.json()["pagination"]["total"] == len(expected)


async def test_resource_and_actor_filters(client, conn, admin):
    ids, merchant, purchase = await arrange(conn, admin.id)
    by_resource = await client.get(PATH, token=admin.token, params={"resource_id": merchant})
    assert [r["id"] for r in by_resource.json()["data"]] == [ids[4], ids[1], ids[0]]
    by_actor = await client.get(PATH, token=admin.token, params={"actor_id": admin.id, "offset": 3})
    assert by_actor.json()["pagination"]["total"] == 4 and len(by_actor.json()["data"]) == 1
    nobody = await client.get(PATH, token=admin.token, params={"actor_id": str(uuid.uuid4()), "offset": 50})
    assert nobody.json() == {"data": [], "pagination": {"offset": 50, "limit": 20, "total": 0}}


@pytest.mark.parametrize(
    "params, fields",
    [
        ({"action": "merchant_created"}, ["action"]),
        ({"action": "USER_DELETED"}, ["action"]),
        ({"resource_type": "user"}, ["resource_type"]),
        ({"resource_id": "42"}, ["resource_id"]),
        ({"actor_id": "nobody"}, ["actor_id"]),
        ({"from": "2026-03-04T10:00:00"}, ["from"]),
        ({"to": "2026-03-04"}, ["to"]),
        ({"from": "yesterday"}, ["from"]),
        ({"from": "2026-03-05T00:00:00+00:00", "to": "2026-03-04T00:00:00+00:00"}, ["from"]),
        (
            {"from": "2026-03-05T00:00:00+00:00", "to": "2026-03-04T00:00:00+00:00", "limit": "0", "action": "X"},
            ["limit", "action", "from"],
        ),
        ({"limit": "abc", "offset": "-1"}, ["offset", "limit"]),
    ],
)
async def test_bad_query_is_422(client, admin, params, fields):
    response = await client.get(PATH, token=admin.token, params=params)
    assert response.status_code == 422
    assert error_of(response)["code"] == "VALIDATION_ERROR"
    assert sorted(fields_of(response)) == sorted(fields)


async def test_audit_log_is_admin_only(client, user):
    as_user = await client.get(PATH, token=user.token)
    assert as_user.status_code == 403 and error_of(as_user)["code"] == "FORBIDDEN"
    assert (await client.get(PATH)).status_code == 401


async def test_business_changes_show_up_in_the_list(client, admin):
    created = await client.post(
        "/api/v1/merchants",
        token=admin.token,
        json={"name": "Audited", "default_cashback_percentage": "2.5", "active": False},
    )
    merchant_id = created.json()["id"]
    await client.patch(f"/api/v1/merchants/{merchant_id}/status", token=admin.token, json={"status": "active"})
    response = await client.get(
        PATH, token=admin.token, params={"resource_type": "merchant", "resource_id": merchant_id}
    )
    rows = response.json()["data"]
    assert [r["action"] for r in rows] == ["MERCHANT_STATUS_CHANGED", "MERCHANT_CREATED"]
    assert rows[1]["details"] == {"name": "Audited", "default_cashback_percentage": 2.5, "active": False}
    assert all(r["actor_type"] == "admin" and r["actor_id"] == admin.id and r["outcome"] == "success" for r in rows)


@pytest.mark.parametrize("params", [{"to": "9999-12-31T23:59:59-05:00"}, {"from": "0001-01-01T00:00:00+05:00"}])
async def test_timestamps_past_the_utc_range_are_422(client, admin, params):
    response = await client.get(PATH, token=admin.token, params=params)
    assert response.status_code == 422
    assert error_of(response)["details"]["violations"] == [
        {"field": next(iter(params)), "reason": "Timestamp is out of range."}
    ]

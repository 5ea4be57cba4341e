"""PATCH /offers/{id}/status (API.md §3.4): activation checks in order, one active offer per merchant."""

import asyncio
import json
import uuid

import pytest

from tests.integration.merchants.factory import audit_rows, days, error_of, fields_of, insert_merchant, insert_offer


def status_path(offer_id, slash=""):
    return f"/api/v1/offers/{offer_id}/status{slash}"


@pytest.mark.parametrize("slash", ["", "/"])
async def test_deactivate_then_activate_is_audited(client, conn, admin, slash):
    merchant_id = await insert_merchant(conn)
    offer_id = await insert_offer(conn, merchant_id)
    off = await client.patch(status_path(offer_id, slash), token=admin.token, json={"status": "inactive"})
    assert off.status_code == 200 and off.json() == {"id": offer_id, "status": "inactive"}
    on = await client.patch(status_path(offer_id, slash), token=admin.token, json={"status": "active"})
    assert on.status_code == 200 and on.json() == {"id": offer_id, "status": "active"}
    rows = await audit_rows(conn, offer_id)
    assert [(r["action"], r["actor_id"], json.loads(r["details"])) for r in rows] == [
        ("OFFER_STATUS_CHANGED", admin.id, {"merchant_id": merchant_id, "from": "active", "to": "inactive"}),
        ("OFFER_STATUS_CHANGED", admin.id, {"merchant_id": merchant_id, "from": "inactive", "to": "active"}),
    ]


@pytest.mark.parametrize("status", ["active", "inactive"])
async def test_same_status_is_a_noop_without_audit_even_if_activation_would_fail(client, conn, admin, status):
    merchant_id = await insert_merchant(conn, active=False)
    offer_id = await insert_offer(conn, merchant_id, active=status == "active", end=days(-5), start=days(-9))
    response = await client.patch(status_path(offer_id), token=admin.token, json={"status": status})
    assert response.status_code == 200 and response.json() == {"id": offer_id, "status": status}
    assert await audit_rows(conn, offer_id) == []


async def test_deactivation_is_always_allowed(client, conn, admin):
    merchant_id = await insert_merchant(conn, active=False)
    offer_id = await insert_offer(conn, merchant_id, start=days(-60), end=days(-30))
    response = await client.patch(status_path(offer_id), token=admin.token, json={"status": "inactive"})
    assert response.status_code == 200
    assert await conn.fetchval("SELECT active FROM offers WHERE id = $1", offer_id) is False


async def test_activation_needs_an_active_merchant_first(client, conn, admin):
    merchant_id = await insert_merchant(conn, active=False)
    offer_id = await insert_offer(conn, merchant_id, active=False, start=days(-60), end=days(-30))
    await insert_offer(conn, merchant_id, active=True)
    response = await client.patch(status_path(offer_id), token=admin.token, json={"status": "active"})
    assert response.status_code == 422
    assert error_of(response) == {
        "code": "MERCHANT_NOT_ACTIVE",
        "message": f"Cannot activate offer '{offer_id}'. Merchant '{merchant_id}' is not active.",
        "details": {
            "merchant_id": merchant_id,
            "offer_id": offer_id,
            "action": "Activate the merchant before activating its offers.",
        },
    }


async def test_activation_of_an_ended_offer_is_422_before_the_conflict(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    offer_id = await insert_offer(conn, merchant_id, active=False, start=days(-60), end=days(-1))
    await insert_offer(conn, merchant_id, active=True)
    response = await client.patch(status_path(offer_id), token=admin.token, json={"status": "active"})
    assert response.status_code == 422
    assert error_of(response) == {
        "code": "OFFER_EXPIRED",
        "message": f"Offer '{offer_id}' ended on {days(-1)} and cannot be activated.",
        "details": {"offer_id": offer_id, "end_date": str(days(-1))},
    }


async def test_offer_ending_today_can_be_activated(client, conn, admin):
    offer_id = await insert_offer(conn, await insert_merchant(conn), active=False, start=days(-9), end=days(0))
    response = await client.patch(status_path(offer_id), token=admin.token, json={"status": "active"})
    assert response.status_code == 200


async def test_activation_with_another_active_offer_is_409(client, conn, admin):
    merchant_id = await insert_merchant(conn)
    offer_id = await insert_offer(conn, merchant_id, active=False)
    other = await insert_offer(conn, merchant_id, active=True)
    response = await client.patch(status_path(offer_id), token=admin.token, json={"status": "active"})
    assert response.status_code == 409
    assert error_of(response) == {
        "code": "ACTIVE_OFFER_ALREADY_EXISTS",
        "message": f"An active offer already exists for merchant '{merchant_id}'. "
        "Deactivate the existing offer before creating a new one.",
        "details": {
            "merchant_id": merchant_id,
            "existing_offer_id": other,
            "action": "Deactivate the existing offer before creating a new one.",
        },
    }
    assert await audit_rows(conn, offer_id) == []


async def test_concurrent_activations_give_one_200_and_one_409(client, conn, admin):
    """Both requests queue on the merchant row, then race past the pre-check: the partial index decides."""
    rounds = []
    for _ in range(4):
        merchant_id = await insert_merchant(conn)
        rounds.append((merchant_id, [await insert_offer(conn, merchant_id, active=False) for _ in range(2)]))
    blocker = conn.transaction()
    await blocker.start()
    await conn.execute("SELECT 1 FROM merchants WHERE id = ANY($1::uuid[]) FOR UPDATE", [m for m, _ in rounds])
    calls = asyncio.gather(
        *[
            client.patch(status_path(offer_id), token=admin.token, json={"status": "active"})
            for _, offers in rounds
            for offer_id in offers
        ]
    )
    deadline = asyncio.get_running_loop().time() + 30
    while await lock_waiters(conn) < 2 * len(rounds):
        assert asyncio.get_running_loop().time() < deadline, "the activations never queued on the merchant rows"
        await asyncio.sleep(0.02)
    await blocker.rollback()
    responses = await calls
    for index, (merchant_id, offers) in enumerate(rounds):
        pair = responses[2 * index : 2 * index + 2]
        assert sorted(r.status_code for r in pair) == [200, 409], [r.text for r in pair]
        loser = next(r for r in pair if r.status_code == 409)
        winner = offers[[r.status_code for r in pair].index(200)]
        assert error_of(loser)["code"] == "ACTIVE_OFFER_ALREADY_EXISTS"
        assert error_of(loser)["details"]["existing_offer_id"] == winner
        assert await conn.fetchval("SELECT count(*) FROM offers WHERE merchant_id = $1 AND active", merchant_id) == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'OFFER_STATUS_CHANGED'") == len(rounds)


async def lock_waiters(conn) -> int:
    # Statistics are snapshotted per transaction: clear the snapshot to see the waiters of now.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )


@pytest.mark.parametrize("raw_id", [str(uuid.uuid4()), "12345"])
async def test_unknown_offer_is_404(client, admin, raw_id):
    response = await client.patch(status_path(raw_id), token=admin.token, json={"status": "inactive"})
    assert response.status_code == 404
    assert error_of(response)["details"] == {"resource_type": "offer", "resource_id": raw_id}


@pytest.mark.parametrize("body", [{"status": "archived"}, {}, {"status": 1}])
async def test_bad_status_is_422(client, conn, admin, body):
    offer_id = await insert_offer(conn, await insert_merchant(conn))
    response = await client.patch(status_path(offer_id), token=admin.token, json=body)
    assert response.status_code == 422 and fields_of(response) == ["status"]


async def test_status_change_requires_admin(client, conn, user):
    offer_id = await insert_offer(conn, await insert_merchant(conn))
    response = await client.patch(status_path(offer_id), token=user.token, json={"status": "inactive"})
    assert response.status_code == 403
    assert (await client.patch(status_path(offer_id), json={"status": "inactive"})).status_code == 401

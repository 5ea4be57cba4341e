"""/feature-flags (API.md §3.8, §4.8): upsert, evaluate, list, delete and the key and scope rules."""

import asyncio
import json
import uuid

import pytest

from tests.integration.merchants.factory import audit_rows, error_of, fields_of

BASE = "/api/v1/feature-flags"


async def put(client, token, key, **body):
    return await client.put(f"{BASE}/{key}", token=token, json=body)


@pytest.mark.parametrize("slash", ["", "/"])
async def test_put_creates_then_updates_and_audits_both(client, conn, admin, slash):
    created = await client.put(
        f"{BASE}/purchase_auto_confirm{slash}", token=admin.token, json={"enabled": False, "description": "pause"}
    )
    assert created.status_code == 200, created.text
    flag = created.json()
    assert flag == {
        "id": flag["id"],
        "key": "purchase_auto_confirm",
        "enabled": False,
        "scope_type": "global",
        "scope_id": None,
        "description": "pause",
        "created_at": flag["created_at"],
        "updated_at": flag["updated_at"],
    }
    assert flag["created_at"].endswith("+00:00")
    updated = await client.put(f"{BASE}/purchase_auto_confirm{slash}", token=admin.token, json={"enabled": True})
    assert updated.status_code == 200
    again = updated.json()
    assert (again["id"], again["enabled"], again["description"], again["created_at"]) == (
        flag["id"],
        True,
        "pause",
        flag["created_at"],
    )
    assert again["updated_at"] > flag["updated_at"]
    replaced = await put(client, admin.token, "purchase_auto_confirm", enabled=True, description="on again")
    assert replaced.json()["description"] == "on again"
    rows = await audit_rows(conn, flag["id"])
    assert [(r["action"], r["actor_id"], r["resource_type"], json.loads(r["details"])) for r in rows] == [
        (
            "FEATURE_FLAG_SET",
            admin.id,
            "feature_flag",
            {
                "key": "purchase_auto_confirm",
                "scope_type": "global",
                "scope_id": None,
                "enabled": False,
                "previous_enabled": None,
            },
        ),
        (
            "FEATURE_FLAG_SET",
            admin.id,
            "feature_flag",
            {
                "key": "purchase_auto_confirm",
                "scope_type": "global",
                "scope_id": None,
                "enabled": True,
                "previous_enabled": False,
            },
        ),
        (
            "FEATURE_FLAG_SET",
            admin.id,
            "feature_flag",
            {
                "key": "purchase_auto_confirm",
                "scope_type": "global",
                "scope_id": None,
                "enabled": True,
                "previous_enabled": True,
            },
        ),
    ]
    assert await conn.fetchval("SELECT count(*) FROM feature_flags") == 1


async def test_scoped_rows_are_separate_from_the_global_row(client, conn, admin):
    someone, shop = str(uuid.uuid4()), str(uuid.uuid4())
    await put(client, admin.token, "beta", enabled=True)
    scoped = await put(client, admin.token, "beta", enabled=False, scope_type="user", scope_id=someone)
    assert scoped.status_code == 200 and (scoped.json()["scope_type"], scoped.json()["scope_id"]) == ("user", someone)
    await put(client, admin.token, "beta", enabled=False, scope_type="merchant", scope_id=shop)
    await put(client, admin.token, "beta", enabled=True, scope_type="merchant", scope_id=shop)
    assert await conn.fetchval("SELECT count(*) FROM feature_flags WHERE key = 'beta'") == 3


async def test_concurrent_puts_of_one_new_flag_make_one_row_and_one_creation(client, conn, admin):
    responses = await asyncio.gather(*[put(client, admin.token, "raced", enabled=i % 2 == 0) for i in range(8)])
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.json()["id"] for r in responses}) == 1
    assert await conn.fetchval("SELECT count(*) FROM feature_flags WHERE key = 'raced'") == 1
    previous = [
        json.loads(d)["previous_enabled"]
        for d in await conn.fetchval(
            "SELECT array_agg(details::text) FROM audit_logs WHERE action = 'FEATURE_FLAG_SET'"
        )
    ]
    assert len(previous) == 8 and previous.count(None) == 1


@pytest.mark.parametrize(
    "key, body, fields",
    [
        ("Bad-Key", {"enabled": True}, ["key"]),
        ("9lives", {"enabled": True}, ["key"]),
        ("a" * 101, {"enabled": True}, ["key"]),
        ("bad.key", {}, ["key", "enabled"]),
        ("ok_key", {"enabled": "true"}, ["enabled"]),
        ("ok_key", {"enabled": True, "scope_type": "team"}, ["scope_type"]),
        ("ok_key", {"enabled": True, "scope_type": "user", "scope_id": "nope"}, ["scope_id"]),
        ("ok_key", {"enabled": True, "description": "x" * 501}, ["description"]),
        ("ok_key", {"enabled": True, "scope_id": str(uuid.uuid4())}, ["scope_id"]),
        ("ok_key", {"enabled": True, "scope_type": "global", "scope_id": str(uuid.uuid4())}, ["scope_id"]),
        ("Bad", {"enabled": 3, "scope_type": "global", "scope_id": str(uuid.uuid4())}, ["key", "enabled", "scope_id"]),
    ],
)
async def test_put_validation_is_422_with_every_violation(client, conn, admin, key, body, fields):
    response = await put(client, admin.token, key, **body)
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "VALIDATION_ERROR"
    assert fields_of(response) == fields
    assert await conn.fetchval("SELECT count(*) FROM feature_flags") == 0


async def test_global_scope_with_id_reason(client, admin):
    response = await put(client, admin.token, "k", enabled=True, scope_id=str(uuid.uuid4()))
    assert error_of(response)["details"]["violations"] == [
        {"field": "scope_id", "reason": "scope_id must be null when scope_type is 'global'."}
    ]


@pytest.mark.parametrize("scope_type", ["merchant", "user"])
async def test_scoped_flag_without_id_is_422_scope_id_required(client, admin, scope_type):
    for body in (
        {"enabled": True, "scope_type": scope_type},
        {"enabled": True, "scope_type": scope_type, "scope_id": None},
    ):
        response = await put(client, admin.token, "k", **body)
        assert response.status_code == 422
        assert error_of(response) == {
            "code": "FEATURE_FLAG_SCOPE_ID_REQUIRED",
            "message": f"scope_id is required when scope_type is '{scope_type}'.",
            "details": {"scope_type": scope_type},
        }


async def test_key_is_checked_before_the_scope(client, admin):
    response = await put(client, admin.token, "BAD", enabled=True, scope_type="user")
    assert error_of(response)["code"] == "VALIDATION_ERROR" and fields_of(response) == ["key"]


async def test_put_accepts_a_body_null_scope_id_for_global(client, admin):
    response = await put(client, admin.token, "k", enabled=True, scope_type="global", scope_id=None)
    assert response.status_code == 200 and response.json()["scope_id"] is None


# -- evaluate --------------------------------------------------------------------------------
async def test_evaluate_resolves_scoped_then_global_then_default(client, admin):
    dave, alice = str(uuid.uuid4()), str(uuid.uuid4())
    path = f"{BASE}/purchase_auto_confirm/evaluate"
    default = await client.get(path, token=admin.token, params={"scope_type": "user", "scope_id": dave})
    assert default.status_code == 200
    assert default.json() == {"key": "purchase_auto_confirm", "enabled": True, "source": "default"}
    await put(client, admin.token, "purchase_auto_confirm", enabled=False)
    await put(client, admin.token, "purchase_auto_confirm", enabled=True, scope_type="user", scope_id=dave)
    cases = [
        ({}, False, "global"),
        ({"scope_type": "user", "scope_id": dave}, True, "scoped"),
        ({"scope_type": "user", "scope_id": alice}, False, "global"),
        ({"scope_type": "merchant", "scope_id": dave}, False, "global"),
    ]
    for params, enabled, source in cases:
        response = await client.get(path + "/", token=admin.token, params=params)
        assert response.json() == {"key": "purchase_auto_confirm", "enabled": enabled, "source": source}, params


@pytest.mark.parametrize(
    "key, params, status, code",
    [
        ("Nope", {}, 422, "VALIDATION_ERROR"),
        ("k", {"scope_type": "merchant"}, 422, "FEATURE_FLAG_SCOPE_ID_REQUIRED"),
        ("k", {"scope_id": "6b0e8a80-0f4a-4b8e-9a55-3bd4b2f4a001"}, 422, "VALIDATION_ERROR"),
        ("k", {"scope_type": "planet", "scope_id": "x"}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_evaluate_rules(client, admin, key, params, status, code):
    response = await client.get(f"{BASE}/{key}/evaluate", token=admin.token, params=params)
    assert response.status_code == status and error_of(response)["code"] == code


# -- list ------------------------------------------------------------------------------------
async def test_list_newest_first_with_filters(client, conn, admin):
    dave = str(uuid.uuid4())
    ids = []
    for key, scope in [("a_flag", {}), ("b_flag", {}), ("a_flag", {"scope_type": "user", "scope_id": dave})]:
        ids.append((await put(client, admin.token, key, enabled=True, **scope)).json()["id"])
    everything = await client.get(BASE, token=admin.token)
    assert everything.status_code == 200
    assert [f["id"] for f in everything.json()["data"]] == ids[::-1]
    assert everything.json()["pagination"] == {"offset": 0, "limit": 20, "total": 3}
    cases = [
        ({"key": "a_flag"}, [ids[2], ids[0]]),
        ({"scope_type": "global"}, [ids[1], ids[0]]),
        ({"scope_id": dave}, [ids[2]]),
        ({"key": "a_flag", "scope_type": "global"}, [ids[0]]),
        ({"limit": 1, "offset": 1}, [ids[1]]),
        ({"offset": 9}, []),
    ]
    for params, expected in cases:
        response = await client.get(BASE + "/", token=admin.token, params=params)
        assert [f["id"] for f in response.json()["data"]] == expected, params
    assert (await client.get(BASE, token=admin.token, params={"offset": 9})).json()["pagination"]["total"] == 3


@pytest.mark.parametrize(
    "params, fields",
    [({"scope_type": "x"}, ["scope_type"]), ({"scope_id": "x"}, ["scope_id"]), ({"limit": "101"}, ["limit"])],
)
async def test_list_bad_query_is_422(client, admin, params, fields):
    response = await client.get(BASE, token=admin.token, params=params)
    assert response.status_code == 422 and fields_of(response) == fields


# -- delete ----------------------------------------------------------------------------------
async def test_delete_removes_the_exact_row_and_audits(client, conn, admin):
    alice = str(uuid.uuid4())
    await put(client, admin.token, "purchase_auto_confirm", enabled=True)
    scoped = (
        await put(client, admin.token, "purchase_auto_confirm", enabled=False, scope_type="user", scope_id=alice)
    ).json()
    params = {"scope_type": "user", "scope_id": alice}
    deleted = await client.delete(f"{BASE}/purchase_auto_confirm", token=admin.token, params=params)
    assert deleted.status_code == 204 and deleted.content == b""
    assert await conn.fetchval("SELECT count(*) FROM feature_flags") == 1
    rows = await audit_rows(conn, scoped["id"])
    assert json.loads(rows[-1]["details"]) == {
        "key": "purchase_auto_confirm",
        "scope_type": "user",
        "scope_id": alice,
        "enabled": False,
    }
    assert rows[-1]["action"] == "FEATURE_FLAG_DELETED" and rows[-1]["actor_id"] == admin.id
    again = await client.delete(f"{BASE}/purchase_auto_confirm/", token=admin.token, params=params)
    assert again.status_code == 404
    assert error_of(again) == {
        "code": "FEATURE_FLAG_NOT_FOUND",
        "message": "Feature flag 'purchase_auto_confirm' not found for scope 'user'.",
        "details": {"key": "purchase_auto_confirm", "scope_type": "user", "scope_id": alice},
    }
    global_gone = await client.delete(f"{BASE}/purchase_auto_confirm", token=admin.token)
    assert global_gone.status_code == 204
    missing = await client.delete(f"{BASE}/purchase_auto_confirm", token=admin.token)
    assert error_of(missing)["details"] == {"key": "purchase_auto_confirm", "scope_type": "global", "scope_id": None}


@pytest.mark.parametrize(
    "key, params, code",
    [
        ("UPPER", {}, "VALIDATION_ERROR"),
        ("k", {"scope_type": "user"}, "FEATURE_FLAG_SCOPE_ID_REQUIRED"),
        ("k", {"scope_type": "global", "scope_id": "6b0e8a80-0f4a-4b8e-9a55-3bd4b2f4a001"}, "VALIDATION_ERROR"),
    ],
)
async def test_delete_rules(client, admin, key, params, code):
    response = await client.delete(f"{BASE}/{key}", token=admin.token, params=params)
    assert response.status_code == 422 and error_of(response)["code"] == code


@pytest.mark.parametrize(
    "method, path", [("put", f"{BASE}/k"), ("get", f"{BASE}/k/evaluate"), ("get", BASE), ("delete", f"{BASE}/k")]
)
async def test_flags_are_admin_only(client, user, method, path):
    kwargs = {"json": {"enabled": True}} if method == "put" else {}
    as_user = await getattr(client, method)(path, token=user.token, **kwargs)
    assert as_user.status_code == 403 and error_of(as_user)["details"] == {"required_role": "admin"}
    anonymous = await getattr(client, method)(path, **kwargs)
    assert anonymous.status_code == 401


async def test_put_media_type_and_json(client, admin):
    wrong = await client.put(f"{BASE}/k", token=admin.token, content=b"x", headers={"Content-Type": "text/xml"})
    assert wrong.status_code == 415
    broken = await client.put(
        f"{BASE}/k", token=admin.token, content=b"{", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and error_of(broken)["code"] == "MALFORMED_JSON"
    missing = await client.put(f"{BASE}/BAD", token=admin.token)
    assert missing.status_code == 422 and fields_of(missing) == ["body"]

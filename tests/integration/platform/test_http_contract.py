"""API.md §1: routing, media types, body limits, the error envelope and request ids."""

import re

import pytest

from server.app import create_app
from tests.support.client import AppClient

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_unknown_route_is_404_in_the_envelope(client):
    response = await client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "error": {
            "code": "NOT_FOUND",
            "message": "No route matches GET /api/v1/nope.",
            "details": {"method": "GET", "path": "/api/v1/nope"},
        }
    }


async def test_wrong_method_is_405_with_allow(client):
    response = await client.delete("/api/v1/users/me")
    assert response.status_code == 405
    error = response.json()["error"]
    assert error["code"] == "METHOD_NOT_ALLOWED"
    assert error["details"]["method"] == "DELETE" and "GET" in error["details"]["allowed_methods"]
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize("path", ["/api/v1/users/me", "/api/v1/users/me/", "/health/live/", "/health/ready/"])
async def test_both_slash_forms_answer_without_redirect(client, user, path):
    response = await client.get(path, token=user.token)
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/users/me//", "/api/v1/merchants//", "/health/live//"])
async def test_more_than_one_trailing_slash_is_no_route(client, admin, path):
    response = await client.get(path, token=admin.token)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "query, field, code",
    [
        ("/api/v1/merchants?limit=", "limit", "VALIDATION_ERROR"),
        ("/api/v1/merchants?offset=", "offset", "VALIDATION_ERROR"),
        ("/api/v1/merchants?active=", "active", "VALIDATION_ERROR"),
        ("/api/v1/offers?date_from=2026-01-01&date_to=", "date_to", "VALIDATION_ERROR"),
        ("/api/v1/audit-logs?from=", "from", "VALIDATION_ERROR"),
        ("/api/v1/purchases?user_id=", "user_id", "VALIDATION_ERROR"),
        ("/api/v1/users/me/purchases?status=", None, "INVALID_PURCHASE_STATUS"),
    ],
)
async def test_a_blank_query_value_is_invalid_not_absent(client, admin, query, field, code):
    """`?limit=` is not a page size: 422, not the default page (API.md §1.6-1.7)."""
    response = await client.get(query, token=admin.token)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert [v["field"] for v in error["details"]["violations"]] == [field]


async def test_the_largest_offset_is_an_empty_page_and_one_past_it_is_out_of_range(client, admin):
    """API.md §1.5: an offset past the end is `data: []` with the real total; only an integer out of
    range is 422, and it says so (it said "Must be an integer." for 10^18)."""
    largest = await client.get("/api/v1/merchants", token=admin.token, params={"offset": "9223372036854775807"})
    assert largest.status_code == 200, largest.text
    assert largest.json()["data"] == [] and largest.json()["pagination"]["offset"] == 9223372036854775807
    first = await client.get("/api/v1/merchants", token=admin.token)
    assert largest.json()["pagination"]["total"] == first.json()["pagination"]["total"]
    beyond = await client.get("/api/v1/merchants", token=admin.token, params={"offset": "1" + "0" * 18 + "0"})
    assert beyond.status_code == 422
    assert beyond.json()["error"]["details"]["violations"] == [
        {"field": "offset", "reason": "Must be at most 9223372036854775807."}
    ]


async def test_body_over_the_limit_is_413(client):
    response = await client.post(
        "/api/v1/users", content=b"{" + b" " * 1048576 + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "PAYLOAD_TOO_LARGE",
        "message": "Request body exceeds 1048576 bytes.",
        "details": {"max_bytes": 1048576},
    }


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("POST", "/api/v1/nope", 404),
        ("DELETE", "/api/v1/merchants", 405),
        ("PUT", "/api/v1/users/me", 405),
    ],
)
async def test_routing_errors_come_before_413(client, method, path, status):
    """API.md §1.7: route (404/405) -> body size (413)."""
    response = await client.request(method, path, content=b"x" * 1048713, headers={"content-type": "application/json"})
    assert response.status_code == status


async def test_405_on_a_path_with_a_parameter_names_the_allowed_methods(client, user):
    response = await client.get("/api/v1/purchases/00000000-0000-4000-8000-000000000000/confirmation", token=user.token)
    assert response.status_code == 405
    assert "POST" in response.json()["error"]["details"]["allowed_methods"]
    assert "POST" in response.headers["allow"].split(", ")
    assert "GET" not in response.headers["allow"].split(", ")


@pytest.mark.parametrize(
    "body",
    [
        rb'{"email": "nul\u0000x@example.com", "password": "Str0ng!Pass"}',
        rb'{"email": "sur\ud800@example.com", "password": "Str0ng!Pass"}',
    ],
)
async def test_strings_postgresql_cannot_store_are_422_not_500(client, body):
    response = await client.post("/api/v1/users", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["violations"] == [
        {"field": "email", "reason": "Must not contain NUL characters or unpaired surrogates."}
    ]


async def test_a_nul_in_a_query_value_is_422(client, admin):
    response = await client.get("/api/v1/feature-flags?key=a%00b", token=admin.token)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["violations"][0]["field"] == "key"


@pytest.mark.parametrize("depth, leaf", [(100_000, b""), (900, b'"\\u0000"'), (990, b'"x\\u00e9"')])
async def test_json_nested_too_deeply_is_malformed_not_500(client, depth, leaf):
    """The decoder and the walk for unstorable strings both recurse per level: neither may 500."""
    body = b'{"a": ' + b"[" * depth + leaf + b"]" * depth + b"}"
    response = await client.post("/api/v1/users", content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.json()["error"]["code"] in ("MALFORMED_JSON", "VALIDATION_ERROR")


async def test_413_comes_before_authentication(client):
    response = await client.get("/api/v1/users/me", content=b"x" * 1048577)
    assert response.status_code == 413


async def test_authentication_comes_before_media_type(client):
    response = await client.get("/debug/version", content=b"<xml/>", headers={"content-type": "text/xml"})
    assert response.status_code == 401


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_non_json_media_type_is_415(client, content_type):
    response = await client.post(
        "/api/v1/users", content=b'{"email": "a@b.co"}', headers={"content-type": content_type}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert response.json()["error"]["details"] == {"content_type": content_type}


async def test_json_with_charset_and_without_content_type_are_accepted(client):
    with_charset = await client.post(
        "/api/v1/users",
        content=b'{"email": "c1@b.co", "password": "Str0ng!Pass"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    without = await client.post("/api/v1/users", content=b'{"email": "c2@b.co", "password": "Str0ng!Pass"}')
    assert with_charset.status_code == 201 and without.status_code == 201


@pytest.mark.parametrize("raw", [b"{not json", b'{"a": 1,}', b"\xff\xfe"])
async def test_malformed_json_is_400(client, raw):
    response = await client.post("/api/v1/users", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "MALFORMED_JSON" and isinstance(error["details"]["reason"], str)


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"42", b""])
async def test_non_object_or_missing_body_is_422_on_body(client, raw):
    response = await client.post("/api/v1/users", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["violations"][0]["field"] == "body"


async def test_unknown_body_fields_are_ignored(client):
    response = await client.post("/api/v1/users", json={"email": "x@b.co", "password": "Str0ng!Pass", "role": "admin"})
    assert response.status_code == 201 and response.json()["role"] == "user"


async def test_request_id_is_reused_when_valid_and_generated_otherwise(client):
    reused = await client.get("/health/live", headers={"X-Request-ID": "trace-123.abc:XY"})
    assert reused.headers["x-request-id"] == "trace-123.abc:XY"
    for bad in ("has space", "x" * 129, "semi;colon"):
        generated = await client.get("/health/live", headers={"X-Request-ID": bad})
        assert UUID4.match(generated.headers["x-request-id"])
    errored = await client.get("/api/v1/nope")
    assert UUID4.match(errored.headers["x-request-id"])


async def test_unhandled_error_is_500_without_a_trace(settings):
    app = create_app(settings)

    @app.get("/boom")
    async def boom(request):
        raise RuntimeError("secret internals")

    client = AppClient(app)
    await client.start()
    try:
        response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    finally:
        await client.stop()
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert body["error"]["message"] == "An unexpected error occurred. Our team has been notified. Please retry later."
    assert body["error"]["details"]["request_id"] == "req-500"
    assert body["error"]["details"]["timestamp"].endswith("+00:00")
    assert "secret internals" not in response.text and "Traceback" not in response.text


async def test_openapi_document_is_served(client):
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/users" in paths and "/api/v1/auth/login" in paths

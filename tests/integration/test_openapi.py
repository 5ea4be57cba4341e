"""The OpenAPI document at /docs/openapi.json is a valid OpenAPI 3 document that describes the catalogue API."""

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV30SpecValidator

# (path as OpenAPI writes it, method, has a request body, success status)
CATALOGUE_OPERATIONS = [
    ("/api/v1/merchants", "post", True, "201"),
    ("/api/v1/merchants", "get", False, "200"),
    ("/api/v1/merchants/{merchant_id}/status", "patch", True, "200"),
    ("/api/v1/offers", "post", True, "201"),
    ("/api/v1/offers", "get", False, "200"),
    ("/api/v1/offers/active", "get", False, "200"),
    ("/api/v1/offers/{offer_id}", "get", False, "200"),
    ("/api/v1/offers/{offer_id}/status", "patch", True, "200"),
    ("/api/v1/feature-flags/{key}", "put", True, "200"),
    ("/api/v1/feature-flags/{key}", "delete", False, "204"),
    ("/api/v1/feature-flags/{key}/evaluate", "get", False, "200"),
    ("/api/v1/feature-flags", "get", False, "200"),
    ("/api/v1/audit-logs", "get", False, "200"),
]
LIST_PATHS = {
    "/api/v1/merchants",
    "/api/v1/offers",
    "/api/v1/offers/active",
    "/api/v1/feature-flags",
    "/api/v1/audit-logs",
}


@pytest.fixture
async def document(client):
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    return response.json()


def catalogue_only(document: dict) -> dict:
    paths = {path for path, _, _, _ in CATALOGUE_OPERATIONS}
    return {**document, "paths": {p: item for p, item in document["paths"].items() if p in paths}}


async def test_catalogue_part_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.0")
    errors = [
        f"{list(e.absolute_path)[:4]}: {e.message[:200]}"
        for e in OpenAPIV30SpecValidator(catalogue_only(document)).iter_errors()
    ]
    assert errors == []


async def test_whole_document_is_valid_openapi_3(document):
    validate(document)


@pytest.mark.parametrize("path, method, has_body, success", CATALOGUE_OPERATIONS)
async def test_every_catalogue_operation_has_request_and_response_schemas(document, path, method, has_body, success):
    operation = document["paths"][path][method]
    assert operation.get("summary")
    responses = operation["responses"]
    assert success in responses
    if success != "204":
        schema = responses[success]["content"]["application/json"]["schema"]
        assert schema["type"] == "object" and schema["properties"]
    if has_body:
        body = operation["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"]["properties"]
    else:
        assert "requestBody" not in operation
    errors = [status for status in responses if status.startswith(("4", "5"))]
    assert errors, "error responses are described"
    for status in errors:
        error_schema = responses[status]["content"]["application/json"]["schema"]
        assert error_schema["required"] == ["error"]
    if path in LIST_PATHS and method == "get":
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert {"offset", "limit"} <= names
        assert {p["schema"]["type"] for p in operation["parameters"] if p["name"] in ("offset", "limit")} == {"integer"}
    path_names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
    assert path_names == {segment[1:-1] for segment in path.split("/") if segment.startswith("{")}


async def test_money_free_catalogue_renders_rates_as_numbers(document):
    merchant = document["paths"]["/api/v1/merchants"]["post"]["responses"]["201"]["content"]["application/json"]
    assert merchant["schema"]["properties"]["default_cashback_percentage"]["type"] == "number"
    offer = document["paths"]["/api/v1/offers/active"]["get"]["responses"]["200"]["content"]["application/json"]
    item = offer["schema"]["properties"]["data"]["items"]["properties"]
    assert item["cashback_value"]["type"] == "number" and item["monthly_cap"]["type"] == "number"
    assert item["merchant_id"]["format"] == "uuid"


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


async def test_every_operation_has_a_description(document):
    undescribed = [f"{method.upper()} {path}" for path, method, op in operations(document) if not op.get("description")]
    assert undescribed == []


async def test_purchase_endpoint_says_who_may_call_it_and_how_the_offer_is_chosen(document):
    text = document["paths"]["/api/v1/purchases"]["post"]["description"]
    assert "`user_id` must be the caller's id" in text and "admin" in text  # who, even admins
    assert "Only EUR is accepted" in text
    assert "merchant's one active offer" in text and "today (UTC)" in text and "`offer_id`" in text


LIST_OPERATIONS = [
    "/api/v1/merchants",
    "/api/v1/offers",
    "/api/v1/offers/active",
    "/api/v1/feature-flags",
    "/api/v1/audit-logs",
    "/api/v1/purchases",
    "/api/v1/payouts",
    "/api/v1/users/me/purchases",
    "/api/v1/users/me/payouts",
    "/api/v1/users/me/wallet/transactions",
]


async def test_each_list_documents_the_page_size_it_uses(document, client, admin):
    """The money lists default to 10 and the others to DEFAULT_PAGE_SIZE: the document says which."""
    for path in LIST_OPERATIONS:
        parameters = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        documented = parameters["limit"]["schema"]["default"]
        served = (await client.get(path, token=admin.token)).json()["pagination"]["limit"]
        assert (path, documented) == (path, served)
        assert str(served) in parameters["limit"]["description"]


async def test_flag_list_filters_by_scope_type_only_when_asked(document, client, admin):
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/feature-flags"]["get"]["parameters"]}
    assert "default" not in parameters["scope_type"]["schema"]
    assert "every scope type when absent" in parameters["scope_type"]["description"]
    merchant = "00000000-0000-4000-8000-000000000001"
    for body in ({"enabled": True}, {"enabled": False, "scope_type": "merchant", "scope_id": merchant}):
        assert (await client.put("/api/v1/feature-flags/doc_check", json=body, token=admin.token)).status_code == 200
    listed = (await client.get("/api/v1/feature-flags", params={"key": "doc_check"}, token=admin.token)).json()
    assert sorted(row["scope_type"] for row in listed["data"]) == ["global", "merchant"]


async def test_flag_key_rule_is_documented_as_enforced(document, client, admin):
    for method in ("put", "delete"):
        key = next(
            p for p in document["paths"]["/api/v1/feature-flags/{key}"][method]["parameters"] if p["name"] == "key"
        )
        assert key["schema"] == {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[a-z][a-z0-9_]*$"}
    refused = await client.put("/api/v1/feature-flags/Bad-Key", json={"enabled": True}, token=admin.token)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["violations"][0]["field"] == "key"


async def test_login_401_is_described_as_bad_credentials_not_a_token_problem(document):
    text = document["paths"]["/api/v1/auth/login"]["post"]["responses"]["401"]["description"]
    assert "INVALID_CREDENTIALS" in text and "USER_INACTIVE" in text and "token" not in text


async def test_every_route_that_waits_on_the_database_documents_503_service_busy(document):
    """API.md §1.9: a bounded wait that runs out is 503 SERVICE_BUSY; login and registration also
    answer it when the password-hashing queue is full. The probes' 503 means not ready instead."""
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if method not in {"get", "post", "put", "patch", "delete"} or path.startswith(("/health", "/docs")):
                continue
            assert "SERVICE_BUSY" in operation["responses"]["503"]["description"], (method, path)
    for path in ("/api/v1/auth/login", "/api/v1/users"):
        assert "password-hashing queue" in document["paths"][path]["post"]["responses"]["503"]["description"]
    assert "SERVICE_BUSY" not in str(document["paths"]["/health/live"]["get"]["responses"])
    assert "SERVICE_BUSY" not in document["paths"]["/health/ready"]["get"]["responses"]["503"]["description"]

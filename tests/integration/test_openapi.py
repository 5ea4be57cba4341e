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

"""Pure parts of the OpenAPI document."""

from server.openapi import openapi_path, path_parameters


def test_sanic_paths_become_openapi_paths():
    assert openapi_path("api/v1/offers/<offer_id>/status") == "/api/v1/offers/{offer_id}/status"
    assert openapi_path("api/v1/offers/<offer_id:uuid>") == "/api/v1/offers/{offer_id}"
    assert openapi_path("health/live") == "/health/live"


def test_path_parameters_are_required_strings():
    assert path_parameters("api/v1/feature-flags/<key>/evaluate") == [
        {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert path_parameters("api/v1/users/me") == []


def test_every_documented_request_body_is_the_one_its_endpoint_validates():
    """Written once: the OpenAPI body of each route names the fields its endpoint validates, with the
    same required ones; where the fields carry their schemas, the document is built from them."""
    from server.apidoc import BODY_ATTRIBUTE, OPERATION_ATTRIBUTE, body_of
    from server.routes import BLUEPRINTS

    checked = 0
    for blueprint in BLUEPRINTS:
        for route in blueprint._future_routes:
            handler = route.handler
            fields = getattr(handler, BODY_ATTRIBUTE, None)
            operation = getattr(handler, OPERATION_ATTRIBUTE, None)
            if not fields or operation is None:
                continue
            documented = operation["requestBody"]["content"]["application/json"]["schema"]
            assert set(documented["properties"]) == set(fields), route.uri
            assert set(documented.get("required", [])) == {n for n, f in fields.items() if f.required}, route.uri
            if all(field.doc is not None for field in fields.values()):
                assert documented == body_of(fields), route.uri
            checked += 1
    assert checked >= 10

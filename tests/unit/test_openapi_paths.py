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
    """Written once: every route with a body is documented from the fields its endpoint validates, each
    of which carries its own schema, and no route documents a body it does not validate."""
    from server.apidoc import BODY_ATTRIBUTE, OPERATION_ATTRIBUTE, body_of
    from server.routes import BLUEPRINTS

    checked = set()
    for blueprint in BLUEPRINTS:
        for route in blueprint._future_routes:
            handler = route.handler
            fields = getattr(handler, BODY_ATTRIBUTE, None)
            operation = getattr(handler, OPERATION_ATTRIBUTE, None)
            assert operation is not None, route.uri
            if not fields:
                assert "requestBody" not in operation, route.uri
                continue
            assert all(field.doc is not None for field in fields.values()), route.uri
            documented = operation["requestBody"]["content"]["application/json"]["schema"]
            assert documented == body_of(fields), route.uri
            assert set(documented.get("required", [])) == {n for n, f in fields.items() if f.required}, route.uri
            checked.add(f"{blueprint.url_prefix}{route.uri}")
    assert len(checked) == 11, sorted(checked)  # a new body route joins this count once it is checked here
    assert {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/users", "/api/v1/feature-flags/<key>"} <= checked


def test_a_body_field_without_its_schema_is_refused_when_the_route_is_declared():
    """The document cannot fall back to a second, hand-written schema: describe() refuses the route."""
    import pytest

    from server.apidoc import describe
    from server.endpoint import endpoint
    from server.validation import Field, string

    async def handler(request, call):
        return None

    with pytest.raises(ValueError, match="'name' has no doc schema"):
        describe("x", "x", 200, None, [])(endpoint(body={"name": Field(string(1, 10))})(handler))

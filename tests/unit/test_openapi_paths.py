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

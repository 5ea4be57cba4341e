"""Pure parts of the OpenAPI document, and what a serving process does not import."""

import subprocess
import sys
from pathlib import Path

from server.openapi import openapi_path, path_parameters

ROOT = Path(__file__).resolve().parents[2]


def test_sanic_paths_become_openapi_paths():
    assert openapi_path("api/v1/offers/<offer_id>/status") == "/api/v1/offers/{offer_id}/status"
    assert openapi_path("api/v1/offers/<offer_id:uuid>") == "/api/v1/offers/{offer_id}"
    assert openapi_path("health/live") == "/health/live"


def test_path_parameters_are_required_strings():
    assert path_parameters("api/v1/feature-flags/<key>/evaluate") == [
        {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert path_parameters("api/v1/users/me") == []


def test_the_serving_process_imports_neither_aerich_nor_sanic_ext():
    # Each of them costs tens to hundreds of milliseconds of every start, and so of every rollback.
    # Tortoise it does import: it owns the process's pool (server/db.py).
    code = "import sys; import server.app; print(sorted(m for m in ('aerich', 'sanic_ext') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


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

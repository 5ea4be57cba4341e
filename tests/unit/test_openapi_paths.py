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


def test_the_serving_process_imports_neither_tortoise_aerich_nor_sanic_ext():
    # Each of them cost hundreds of milliseconds of every start, and so of every rollback.
    code = (
        "import sys; import server.app; "
        "print(sorted(m for m in ('tortoise', 'aerich', 'sanic_ext', 'pydantic') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"

"""The OpenAPI 3.0 document and its Swagger UI, at /docs/openapi.json and /docs.

Assembled from the routing table and the operations `apidoc.describe` attached to the handlers,
once, on the first request for it: describing the API costs nothing at import or start-up, which
keeps an instance's start (and so a rollback) fast.

Swagger UI's script and stylesheet come from the pinned `swagger-ui-py` package and are served by
the service itself, so /docs works on a machine without internet (docs/adr/0015).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from sanic import Blueprint, Request, Sanic
from sanic.response import file, html

from server.apidoc import OPERATION_ATTRIBUTE
from server.errors import not_found
from server.http import json_response
from server.version import release_info

TITLE = "ClickNBack API"
DESCRIPTION = "Cashback platform API. Contract: API.md."
SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
UNDOCUMENTED_METHODS = {"HEAD", "OPTIONS"}
_PATH_PARAMETER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>")
# The only files the page loads; anything else under the package's static/ folder is not served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
ASSET_MAX_AGE_SECONDS = 3600

bp = Blueprint("docs", url_prefix="/docs")


def openapi_path(sanic_path: str) -> str:
    """`api/v1/offers/<offer_id:uuid>` -> `/api/v1/offers/{offer_id}`."""
    return "/" + _PATH_PARAMETER.sub(r"{\1}", sanic_path.strip("/"))


def path_parameters(sanic_path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(sanic_path)
    ]


def build_document(app: Sanic, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    tags: list[str] = []
    for route in app.router.routes:  # registration order: tags come out in blueprint order
        described = getattr(route.handler, OPERATION_ATTRIBUTE, None)
        if described is None:
            continue
        given = {p["name"] for p in described.get("parameters", ())}
        implied = [p for p in path_parameters(route.path) if p["name"] not in given]
        operation_name = route.name.split(".", 1)[-1]  # without the app's name
        for method in sorted(set(route.methods) - UNDOCUMENTED_METHODS):
            operation = {**described, "operationId": f"{method.lower()}~{operation_name}"}
            if implied:
                operation["parameters"] = [*described.get("parameters", ()), *implied]
            paths.setdefault(openapi_path(route.path), {})[method.lower()] = operation
            tags += [tag for tag in described["tags"] if tag not in tags]
    return {
        "openapi": "3.0.3",
        "info": {"title": TITLE, "version": version, "description": DESCRIPTION},
        "tags": [{"name": tag} for tag in tags],
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": SECURITY_SCHEMES},
    }


def assets_dir() -> Path:
    """swagger-ui-py's static/ folder, found without importing the package (which would import
    its web-framework helpers and their template engine for nothing)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (it is in requirements.lock)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def swagger_page(document_url: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{TITLE}</title>
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>window.ui = SwaggerUIBundle({{url: "{document_url}", dom_id: "#swagger-ui"}});</script>
</body>
</html>
"""


@bp.get("/openapi.json")
async def openapi_document(request: Request):
    document = getattr(request.app.ctx, "openapi_document", None)
    if document is None:
        document = request.app.ctx.openapi_document = build_document(request.app, release_info().version)
    return json_response(document)


@bp.get("/")
@bp.get("/swagger", name="swagger_ui_alias")
async def swagger_ui(request: Request):
    return html(swagger_page("/docs/openapi.json"))


@bp.get("/assets/<name:str>")
async def swagger_asset(request: Request, name: str):
    mime_type = ASSETS.get(name)
    if mime_type is None:
        raise not_found("asset", name)
    return await file(
        assets_dir() / name,
        mime_type=mime_type,
        headers={"Cache-Control": f"public, max-age={ASSET_MAX_AGE_SECONDS}"},
    )

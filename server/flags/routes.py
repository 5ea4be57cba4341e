"""/api/v1/feature-flags (admin): upsert, evaluate, list, delete (API.md §3.8)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sanic import Blueprint, Request

from server.apidoc import PAGINATION, TIMESTAMP, UUID, describe, nullable, obj, page_of, query
from server.endpoint import Call, endpoint, query_args
from server.errors import schema_error
from server.flags import service
from server.http import empty_response, json_response
from server.validation import (
    Field,
    body_bool,
    choice,
    pagination_schema,
    parse_json,
    query_values,
    string,
    uuid_value,
    validate,
)

bp = Blueprint("flags", url_prefix="/api/v1")

SCOPE_TYPE_DOC = {"type": "string", "enum": list(service.SCOPE_TYPES), "default": "global"}
SCOPE_TYPE = Field(choice(*service.SCOPE_TYPES), required=False, default="global", doc=SCOPE_TYPE_DOC)
SCOPE_ID = Field(uuid_value, required=False, nullable=True, doc=UUID)
UPSERT_BODY = {
    "enabled": Field(body_bool, doc={"type": "boolean"}),
    "scope_type": SCOPE_TYPE,
    "scope_id": SCOPE_ID,
    "description": Field(
        string(max_length=500), required=False, nullable=True, doc={"type": "string", "maxLength": 500}
    ),
}
SCOPE_QUERY = {"scope_type": SCOPE_TYPE, "scope_id": SCOPE_ID}
FLAG_OUT = obj(
    {
        "id": UUID,
        "key": {"type": "string"},
        "enabled": {"type": "boolean"},
        "scope_type": SCOPE_TYPE_DOC,
        "scope_id": nullable(UUID),
        "description": nullable({"type": "string"}),
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
)
EVALUATION_OUT = obj(
    {
        "key": {"type": "string"},
        "enabled": {"type": "boolean"},
        "source": {"type": "string", "enum": ["scoped", "global", "default"]},
    }
)
SCOPE_PARAMS = [query("scope_type", SCOPE_TYPE_DOC), query("scope_id", UUID)]
KEY_TEXT = f"1 to 100 characters matching {service.KEY_PATTERN.pattern} (otherwise 422, field `key`)."
KEY_PARAM = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": service.KEY_PATTERN.pattern},
    "description": KEY_TEXT,
}
SCOPE_TEXT = "scope_id is required for scope_type merchant or user, and must be absent for global."


def with_key_and_scope(body: Mapping[str, Field] | None, query_schema: Mapping[str, Field]) -> Callable:
    """The query schema of a /feature-flags/{key} route, checking the path key and the global-scope rule too.

    API.md §3.8 reports a bad key (field `key`) and a global scope with a scope_id (field `scope_id`) as
    VALIDATION_ERROR together with the other schema violations. The endpoint decorator validates only the
    body and the query, so this runs, at the decorator's schema step, the whole schema once more with the
    key and the scope rule added, and raises them all together.
    """

    def schema(request: Request) -> Mapping[str, Field]:
        violations: list[dict[str, str]] = []
        problem = service.key_violation(request.match_info.get("key"))
        if problem:
            violations.append(problem)
        values: dict[str, Any] = {}
        if body is not None:
            values.update(validate(body, parse_json(request.body) if request.body else {}, violations))
        values.update(validate(query_schema, query_values(query_args(request)), violations))
        scope_problem = service.global_scope_violation(values.get("scope_type"), values.get("scope_id"))
        if scope_problem and not any(v["field"] in ("scope_type", "scope_id") for v in violations):
            violations.append(scope_problem)
        if violations:
            raise schema_error(violations)
        return query_schema

    return schema


def list_query(request: Request):
    settings = request.app.ctx.settings
    return {
        **pagination_schema(settings.default_page_size, settings.max_page_size),
        "key": Field(string(1, 100), required=False),
        "scope_type": Field(choice(*service.SCOPE_TYPES), required=False),
        "scope_id": Field(uuid_value, required=False),
    }


@bp.put("/feature-flags/<key>")
@describe(
    "Create or update a feature flag",
    "feature-flags",
    200,
    FLAG_OUT,
    [400, 401, 403, 415, 422],
    params=[KEY_PARAM],
    description=(
        f"One row per (key, scope_type, scope_id): created, or its enabled replaced (description only when one "
        f"is sent). Key: {KEY_TEXT} {SCOPE_TEXT}"
    ),
)
@endpoint(auth="admin", body=UPSERT_BODY, query=with_key_and_scope(UPSERT_BODY, {}))
async def put_flag(request: Request, call: Call, key: str):
    b = call.body
    service.require_scope_id(b["scope_type"], b["scope_id"])
    flag = await service.upsert(call.caller.id, key, b["scope_type"], b["scope_id"], b["enabled"], b["description"])
    return json_response(flag)


@bp.get("/feature-flags/<key>/evaluate")
@describe(
    "Evaluate a feature flag for a scope",
    "feature-flags",
    200,
    EVALUATION_OUT,
    [401, 403, 422],
    params=[KEY_PARAM, *SCOPE_PARAMS],
    description=f"Scoped row, else the global row, else true (source: default). {SCOPE_TEXT}",
)
@endpoint(auth="admin", query=with_key_and_scope(None, SCOPE_QUERY))
async def evaluate_flag(request: Request, call: Call, key: str):
    q = call.query
    service.require_scope_id(q["scope_type"], q["scope_id"])
    return json_response(await service.evaluate(key, q["scope_type"], q["scope_id"]))


@bp.get("/feature-flags")
@describe(
    "List feature flags",
    "feature-flags",
    200,
    page_of(FLAG_OUT),
    [401, 403, 422],
    params=[
        *PAGINATION,
        query("key", {"type": "string", "minLength": 1, "maxLength": 100}, "Only rows of this key."),
        query(
            "scope_type",
            {"type": "string", "enum": list(service.SCOPE_TYPES)},
            "Only rows of this scope type; rows of every scope type when absent.",
        ),
        query("scope_id", UUID, "Only rows of this scope id."),
    ],
    description="Every flag row, filters combined with AND, sorted by created_at DESC, then id DESC.",
)
@endpoint(auth="admin", query=list_query)
async def list_flags(request: Request, call: Call):
    q = call.query
    return json_response(
        await service.list_page(q["offset"], q["limit"], q.get("key"), q.get("scope_type"), q.get("scope_id"))
    )


@bp.delete("/feature-flags/<key>")
@describe(
    "Delete a feature flag row",
    "feature-flags",
    204,
    None,
    [401, 403, 404, 422],
    params=[KEY_PARAM, *SCOPE_PARAMS],
    description=f"Deletes exactly the row of this key and scope (404 when there is none). {SCOPE_TEXT}",
)
@endpoint(auth="admin", query=with_key_and_scope(None, SCOPE_QUERY))
async def delete_flag(request: Request, call: Call, key: str):
    q = call.query
    service.require_scope_id(q["scope_type"], q["scope_id"])
    await service.delete(call.caller.id, key, q["scope_type"], q["scope_id"])
    return empty_response(204)

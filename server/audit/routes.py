"""/api/v1/audit-logs (admin): the audit log, newest first (API.md §3.9)."""

from sanic import Blueprint, Request

from server.apidoc import PAGINATION, TIMESTAMP, UUID, describe, nullable, obj, page_of, query
from server.audit import service
from server.endpoint import Call, endpoint, query_args
from server.http import json_response
from server.validation import Field, FieldError, choice, pagination_schema, timestamp_value, uuid_value

bp = Blueprint("audit", url_prefix="/api/v1")

AUDIT_OUT = obj(
    {
        "id": UUID,
        "occurred_at": TIMESTAMP,
        "actor_type": {"type": "string", "enum": ["system", "admin", "user"]},
        "actor_id": nullable(UUID),
        "action": {"type": "string", "enum": list(service.ACTIONS)},
        "resource_type": {"type": "string"},
        "resource_id": UUID,
        "outcome": {"type": "string", "enum": ["success", "failure"]},
        "details": {"type": "object", "additionalProperties": True},
    }
)


def _from_not_after(raw_to: str | None):
    """`from`, which must not be after a valid `to` (reported with the other violations)."""

    def parse(raw):
        value = timestamp_value(raw)
        if raw_to is not None:
            try:
                to = timestamp_value(raw_to)
            except FieldError:
                return value  # `to` reports its own violation
            if value > to:
                raise FieldError("'from' must not be after 'to'.")
        return value

    return parse


def list_query(request: Request):
    settings = request.app.ctx.settings
    return {
        **pagination_schema(settings.default_page_size, settings.max_page_size),
        "action": Field(choice(*service.ACTIONS), required=False),
        "resource_type": Field(choice(*service.RESOURCE_TYPES), required=False),
        "resource_id": Field(uuid_value, required=False),
        "actor_id": Field(uuid_value, required=False),
        "from": Field(_from_not_after(query_args(request).get("to")), required=False),
        "to": Field(timestamp_value, required=False),
    }


@bp.get("/audit-logs")
@describe(
    "List audit log entries",
    "audit",
    200,
    page_of(AUDIT_OUT),
    [401, 403, 422],
    params=[
        *PAGINATION,
        query("action", {"type": "string", "enum": list(service.ACTIONS)}),
        query("resource_type", {"type": "string", "enum": list(service.RESOURCE_TYPES)}),
        query("resource_id", UUID),
        query("actor_id", UUID),
        query("from", TIMESTAMP, "Inclusive; must carry a UTC offset."),
        query("to", TIMESTAMP, "Exclusive; must carry a UTC offset."),
    ],
    description="Newest first (occurred_at DESC, then id DESC).",
)
@endpoint(auth="admin", query=list_query)
async def list_audit_logs(request: Request, call: Call):
    q = call.query
    return json_response(await service.list_page(q["offset"], q["limit"], q))

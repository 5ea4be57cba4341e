"""OpenAPI descriptions shared by every route (assembled by server/openapi.py, served at /docs).

Plain JSON schemas, so the served document says exactly what API.md says: money as strings, rates
and caps as numbers, every error in the one envelope of §1.3. `describe` only attaches a plain dict
to the handler: nothing is built at import, and the document is assembled on its first request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from server.validation import BIGINT_MAX, Field, choice

Handler = TypeVar("Handler", bound=Callable[..., Any])
OPERATION_ATTRIBUTE = "__openapi_operation__"
BODY_ATTRIBUTE = "__request_body__"  # set by server.endpoint.endpoint

UUID = {"type": "string", "format": "uuid"}
DATE = {"type": "string", "format": "date"}
TIMESTAMP = {"type": "string", "format": "date-time"}
RATE = {"type": "number", "description": "A rate or cap: a JSON number with at most 2 decimals."}
RATE_IN = {
    "oneOf": [{"type": "number"}, {"type": "string"}],
    "description": "A number or numeric string with at most 2 decimals.",
}
EMAIL_IN = {"type": "string", "format": "email", "maxLength": 254}
# The body of both status routes (merchants, offers): validated and documented by this one declaration.
STATUS_BODY = {"status": Field(choice("active", "inactive"), doc={"type": "string", "enum": ["active", "inactive"]})}
STATUS_OUT = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {"id": UUID, "status": {"type": "string", "enum": ["active", "inactive"]}},
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
        }
    },
}

ERROR_TEXT = {
    400: "Malformed JSON or a business validation rule failed.",
    401: "Missing, invalid or expired access token, or inactive user.",
    403: "The caller's role or ownership does not allow this.",
    404: "Unknown resource.",
    409: "Conflict with the current state.",
    415: "The body is not JSON.",
    413: "The body is larger than MAX_BODY_BYTES.",
    422: "Body or query schema violation, or a documented business rule.",
    429: "Too many failed logins for this email; see Retry-After.",
    503: "Not ready: a readiness check failed or the process is draining.",
}

# Every route that reads the database can run out of a bounded wait (API.md §1.9); only the probes,
# whose 503 means something else, opt out with `busy=False`.
SERVICE_BUSY_TEXT = (
    "SERVICE_BUSY: a bounded wait ran out (connection pool, row lock or statement time); nothing was written; "
    "see Retry-After. SERVICE_UNAVAILABLE: the database is unreachable; see Retry-After."
)
# Login and registration hash a password first, through a bounded queue (API.md §2.3).
HASH_QUEUE_FULL = (
    "SERVICE_BUSY: the password-hashing queue is full, or a bounded wait ran out; nothing was written; "
    "see Retry-After. SERVICE_UNAVAILABLE: the database is unreachable; see Retry-After."
)


def obj(properties: dict[str, Any], required: Iterable[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        **extra,
    }


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    return obj(
        {
            "data": {"type": "array", "items": item},
            "pagination": obj(
                {"offset": {"type": "integer"}, "limit": {"type": "integer"}, "total": {"type": "integer"}}
            ),
        }
    )


def query(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "query", "schema": schema, "required": False}
    if description:
        parameter["description"] = description
    return parameter


def pagination(default_limit: int, limit_text: str) -> list[dict[str, Any]]:
    return [
        query("offset", {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX, "default": 0}, "Rows to skip."),
        query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": default_limit}, limit_text),
    ]


# The catalogue, flag and audit lists follow DEFAULT_PAGE_SIZE / MAX_PAGE_SIZE; the money lists
# (purchases, wallet transactions, payouts) have a fixed default of 10 (API.md §3.5-3.7).
PAGINATION = pagination(20, "Page size: DEFAULT_PAGE_SIZE (20 unless configured), at most MAX_PAGE_SIZE (100).")
MONEY_PAGINATION = pagination(
    10, "Page size: 10 by default for this list (DEFAULT_PAGE_SIZE does not apply), at most 100."
)


def path(name: str) -> dict[str, Any]:
    """Any string: a malformed id is a documented 404, so generated requests may try one."""
    return {"name": name, "in": "path", "schema": {"type": "string"}, "required": True}


def body_of(fields: Mapping[str, Field]) -> dict[str, Any]:
    """The JSON schema of a request body, from the Field declarations that validate it."""
    properties: dict[str, Any] = {}
    for name, field in fields.items():
        if field.doc is None:
            raise ValueError(f"body field {name!r} has no doc schema")
        properties[name] = {**field.doc, "nullable": True} if field.nullable else dict(field.doc)
    required = [name for name, field in fields.items() if field.required]
    return {"type": "object", **({"required": required} if required else {}), "properties": properties}


def describe(
    summary: str,
    tag: str,
    ok_status: int,
    ok: dict[str, Any] | None,
    errors: Iterable[int],
    params: list[dict[str, Any]] | None = None,
    description: str | None = None,
    public: bool = False,
    error_text: dict[int, str] | None = None,
    busy: bool = True,
) -> Callable[[Handler], Handler]:
    """One operation: its request body and query, its success response and its error statuses
    (`error_text` words a status for this operation where ERROR_TEXT's general text would mislead;
    `busy` adds 503 SERVICE_BUSY, which every route that waits on the database can answer).

    The request body is documented from the fields `endpoint(body=...)` validates (each carries its
    `doc` schema), so what is validated and what is documented cannot differ."""
    responses: dict[str, Any] = {
        str(ok_status): {
            "description": "Success.",
            **({"content": {"application/json": {"schema": ok}}} if ok is not None else {}),
        }
    }
    texts = {503: SERVICE_BUSY_TEXT} if busy else {}
    texts.update(error_text or {})
    for status in sorted(set(errors) | ({503} if busy else set())):
        text = texts.get(status, ERROR_TEXT[status])
        responses[str(status)] = {"description": text, "content": {"application/json": {"schema": ERROR}}}
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = list(params)
    if not public:
        operation["security"] = [{"bearer": []}]

    def attach(handler: Handler) -> Handler:
        fields = getattr(handler, BODY_ATTRIBUTE, None)
        if fields:  # body_of refuses a field without its doc schema, at import
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body_of(fields)}}}
        setattr(handler, OPERATION_ATTRIBUTE, operation)
        return handler

    return attach

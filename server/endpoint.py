"""The per-request check order of API.md §1.7, applied to every route by one decorator.

route (Sanic) -> body size (Sanic) -> authentication -> role -> media type -> JSON parsing ->
body and query schema -> the handler's own checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

import asyncpg
from sanic import Request
from sanic.request.parameters import RequestParameters

from server.apidoc import BODY_ATTRIBUTE
from server.auth.guard import CurrentUser, authenticate, caller_lookup, require_admin
from server.errors import ApiError, schema_error, violation
from server.validation import Field, parse_json, query_values, unstorable_fields, validate

Schema = Mapping[str, Field]


def query_args(request: Request) -> RequestParameters:
    """The query string's parameters, blank ones included: `?limit=` is a limit that is not an
    integer (422), never a missing one that quietly takes the default."""
    return request.get_args(keep_blank_values=True)


@dataclass
class Call:
    """What a handler receives besides the request: the caller and the validated input."""

    user: CurrentUser | None
    body: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    about_caller: asyncpg.Record | None = None  # the columns `endpoint(about_caller=...)` asked for

    @property
    def caller(self) -> CurrentUser:
        """The authenticated caller, for handlers of `endpoint(auth="user" | "admin")`."""
        if self.user is None:
            raise RuntimeError("a public endpoint has no caller")
        return self.user


def _check_media_type(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Request body must be JSON (application/json).",
            {"content_type": content_type},
        )


def _read_body(request: Request, required: bool) -> Mapping[str, Any] | None:
    raw = request.body
    if not raw:
        if required:
            raise schema_error([violation("body", "Request body is required.")])
        return None
    try:
        data = parse_json(raw)
        unstorable = unstorable_fields(raw, data) if isinstance(data, dict) else []
    except ValueError as error:  # also UnicodeDecodeError
        raise ApiError(400, "MALFORMED_JSON", "Request body is not valid JSON.", {"reason": str(error)}) from None
    except RecursionError:  # arrays or objects nested about a thousand deep: both walks recurse per level
        raise ApiError(
            400, "MALFORMED_JSON", "Request body is not valid JSON.", {"reason": "nested too deeply"}
        ) from None
    if not isinstance(data, dict):
        raise schema_error([violation("body", "Request body must be a JSON object.")])
    if unstorable:
        raise schema_error(unstorable)
    return data


def endpoint(
    auth: str | None = None,
    body: Schema | None = None,
    query: Schema | Callable[[Request], Schema] | None = None,
    body_required: bool = True,
    about_caller: str | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Wrap a handler `(request, call, **path_params)` with auth, parsing and validation.

    auth: None (public), "user" or "admin". body/query: schemas; `query` may be a function of the
    request (for defaults that come from settings). about_caller: a subquery over `u.id` read with
    the caller's row in one statement (see auth.guard.caller_sql); its columns are `call.about_caller`.
    """
    lookup = caller_lookup(about_caller)

    def decorate(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @wraps(handler)
        async def wrapper(request: Request, **path: Any) -> Any:
            user, row = await authenticate(request, lookup) if auth else (None, None)
            if auth == "admin" and user is not None:
                require_admin(user)
            data: Mapping[str, Any] | None = None
            if body is not None or request.body:
                _check_media_type(request)
            if body is not None:
                data = _read_body(request, body_required)
            violations: list[dict[str, str]] = []
            parsed_body = validate(body, data or {}, violations) if body is not None else {}
            query_schema = query(request) if callable(query) else query
            parsed_query = validate(query_schema, query_values(query_args(request)), violations) if query_schema else {}
            if violations:
                raise schema_error(violations)
            call = Call(user, parsed_body, parsed_query, row if about_caller is not None else None)
            return await handler(request, call, **path)

        setattr(wrapper, BODY_ATTRIBUTE, body)  # the OpenAPI description reads the same declaration
        return wrapper

    return decorate

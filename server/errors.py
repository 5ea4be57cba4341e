"""The error envelope (API.md §1.3): every error, whatever raised it, leaves in one shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from loguru import logger
from sanic import Request, Sanic
from sanic.exceptions import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestCancelled,
    SanicException,
    ServiceUnavailable,
)

from server.db_pool import PoolTimeout
from server.http import json_response

INTERNAL_ERROR_MESSAGE = "An unexpected error occurred. Our team has been notified. Please retry later."
SCHEMA_MESSAGE = "Request validation failed."
RULES_MESSAGE = "Validation failed for request body."
# nginx's status for a request whose client hung up before the answer: the access logs of both
# agree, and neither the error rate nor the error log counts a client's hang-up as ours.
CLIENT_CLOSED_REQUEST = 499


# A bounded wait of API.md §1.9 ran out: no pooled connection in time (server/db_pool.py), or
# PostgreSQL's lock_timeout (55P03) or statement_timeout (57014) of the pooled connections.
BOUNDED_WAITS_RAN_OUT: tuple[type[BaseException], ...] = (
    PoolTimeout,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
)


# The database is unreachable or going away (down, restarting, shutting down, a dropped connection):
# the request could not be served, which is 503 SERVICE_UNAVAILABLE (API.md §1.3), not a 500.
# Readiness fails at the same time and is what pages; one line per request would only flood the log.
DATABASE_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # connect(): the socket is missing or refused
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.OperatorInterventionError,  # class 57: admin or crash shutdown, cannot connect now
    asyncpg.ConnectionDoesNotExistError,  # the connection closed mid-query
)


class ApiError(Exception):
    """A documented error response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def violation(field: str, reason: str) -> dict[str, str]:
    return {"field": field, "reason": reason}


def schema_error(violations: list[dict[str, str]]) -> ApiError:
    """422: the body or query does not fit the endpoint's schema."""
    return ApiError(422, "VALIDATION_ERROR", SCHEMA_MESSAGE, {"violations": violations})


# NUMERIC(19,2)'s largest value: the most any wallet balance can hold (API.md §5).
BALANCE_LIMIT = "99999999999999999.99"


def balance_limit_exceeded(balance: str, details: dict[str, Any]) -> ApiError:
    """409: the change would take a wallet's `balance` past what its column holds. API.md has no code
    for a wallet of 10^17 euros; a 500 would say the server broke, when the request is what cannot be
    done, and nothing was written."""
    return ApiError(
        409,
        "BALANCE_LIMIT_EXCEEDED",
        f"This would take the wallet's {balance} balance past {BALANCE_LIMIT}, the most it can hold.",
        {**details, "balance": balance, "limit": BALANCE_LIMIT},
    )


def service_busy(retry_after_seconds: int = 1) -> ApiError:
    """503: a bounded wait ran out (API.md §1.9): pool, row lock, statement time, hashing queue.
    Nothing was written, and the client may retry after the pause it is given."""
    return ApiError(
        503,
        "SERVICE_BUSY",
        "The service is busy. Please retry shortly.",
        {"retry_after_seconds": retry_after_seconds},
        {"Retry-After": str(retry_after_seconds)},
    )


def rules_error(violations: list[dict[str, str]]) -> ApiError:
    """400: a well-formed body breaks a business validation rule."""
    return ApiError(400, "VALIDATION_ERROR", RULES_MESSAGE, {"violations": violations})


def not_found(resource_type: str, resource_id: Any) -> ApiError:
    return ApiError(
        404,
        "NOT_FOUND",
        f"{resource_type.replace('_', ' ').capitalize()} with ID '{resource_id}' does not exist.",
        {"resource_type": resource_type, "resource_id": str(resource_id)},
    )


def forbidden(
    message: str = "You do not have permission to perform this action.", details: dict | None = None
) -> ApiError:
    return ApiError(403, "FORBIDDEN", message, details or {})


def envelope(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(error: ApiError):
    return json_response(envelope(error.code, error.message, error.details), status=error.status, headers=error.headers)


def _translate(request: Request, exception: BaseException) -> ApiError:
    if isinstance(exception, ApiError):
        return exception
    if isinstance(exception, BOUNDED_WAITS_RAN_OUT):  # before DATABASE_UNREACHABLE: 57014 is class 57 too
        return service_busy()
    if isinstance(exception, DATABASE_UNREACHABLE):
        return ApiError(
            503, "SERVICE_UNAVAILABLE", "The database is unavailable. Please retry shortly.", {}, {"Retry-After": "5"}
        )
    if isinstance(exception, RequestCancelled):
        return ApiError(CLIENT_CLOSED_REQUEST, "CLIENT_CLOSED_REQUEST", "The client closed the connection.", {})
    if isinstance(exception, NotFound):
        return ApiError(
            404,
            "NOT_FOUND",
            f"No route matches {request.method} {request.path}.",
            {"method": request.method, "path": request.path},
        )
    if isinstance(exception, MethodNotAllowed):
        allowed = sorted(getattr(exception, "allowed_methods", None) or _methods_routed(request))
        return ApiError(
            405,
            "METHOD_NOT_ALLOWED",
            f"Method {request.method} is not allowed for {request.path}.",
            {"method": request.method, "allowed_methods": allowed},
            {"Allow": ", ".join(allowed)},
        )
    if isinstance(exception, PayloadTooLarge) and _is_about_the_head(exception):
        return _head_too_large(request)
    if isinstance(exception, PayloadTooLarge):
        limit = request.app.config.REQUEST_MAX_SIZE
        return ApiError(413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes.", {"max_bytes": limit})
    if isinstance(exception, ServiceUnavailable):
        return ApiError(503, "SERVICE_UNAVAILABLE", "Service unavailable.", {})
    if isinstance(exception, BadRequest):
        return ApiError(400, "BAD_REQUEST", "The request could not be understood.", {})
    if isinstance(exception, SanicException) and 400 <= exception.status_code < 500:
        return ApiError(exception.status_code, "BAD_REQUEST", "The request could not be processed.", {})
    request_id = getattr(request.ctx, "request_id", None) if request is not None else None
    return ApiError(
        500,
        "INTERNAL_SERVER_ERROR",
        INTERNAL_ERROR_MESSAGE,
        {"request_id": request_id, "timestamp": datetime.now(UTC).isoformat()},
    )


def _is_about_the_head(exception: PayloadTooLarge) -> bool:
    # Sanic raises the same PayloadTooLarge for a request head over REQUEST_MAX_HEADER_SIZE as for
    # a body over REQUEST_MAX_SIZE; only its message tells them apart.
    return "header" in str(exception).lower()


def _head_too_large(request: Request) -> ApiError:
    """414 when the request line alone is over the limit (a long URL), 431 when the headers are.

    The head was never parsed, so the request line is looked for in what the connection received."""
    limit = request.app.config.REQUEST_MAX_HEADER_SIZE
    protocol = request.transport.get_protocol() if request.transport is not None else None
    received = bytes(getattr(protocol, "recv_buffer", b"")[: limit + 2])
    line_end = received.find(b"\r\n")
    if line_end == -1 or line_end >= limit:
        return ApiError(414, "URI_TOO_LONG", f"Request target exceeds {limit} bytes.", {"max_bytes": limit})
    return ApiError(431, "HEADERS_TOO_LARGE", f"Request headers exceed {limit} bytes.", {"max_bytes": limit})


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _methods_routed(request: Request) -> list[str]:
    """The methods some route serves at this path. Sanic's router names them only for paths
    without parameters, so a 405 on /purchases/<id>/confirmation asks the router once per method."""
    host = request.headers.get("host")
    allowed = []
    for method in _HTTP_METHODS:
        try:
            request.app.router.get(request.path, method, host)
        except SanicException:  # NotFound, MethodNotAllowed
            continue
        allowed.append(method)
    return allowed


def handle_exception(request: Request, exception: BaseException):
    error = _translate(request, exception)
    if error.code == "SERVICE_BUSY":  # load, not a fault: no traceback, and no ERROR line to page on
        logger.bind(event="app.busy", method=request.method, path=request.path, cause=type(exception).__name__).warning(
            "service busy: {}", type(exception).__name__
        )
    elif error.code == "SERVICE_UNAVAILABLE" and isinstance(exception, DATABASE_UNREACHABLE):
        logger.bind(
            event="app.database_unreachable", method=request.method, path=request.path, cause=type(exception).__name__
        ).warning("database unreachable: {}", type(exception).__name__)
    elif error.status >= 500:
        route = request.route.path if request is not None and request.route else None
        logger.bind(event="app.error", method=request.method, path=request.path, route=route).opt(
            exception=exception
        ).error("unhandled error: {}", type(exception).__name__)
    return error_response(error)


def install(app: Sanic) -> None:
    app.error_handler.add(Exception, handle_exception)
    # Sanic's stand-in for the handler a hang-up cancelled: a CancelledError, not an Exception.
    app.error_handler.add(RequestCancelled, handle_exception)

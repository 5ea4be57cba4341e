"""/api/v1/purchases and /api/v1/users/me/purchases (API.md §3.5)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request

from server.endpoint import Call, endpoint, query_args
from server.errors import forbidden, not_found, violation
from server.http import json_response, page
from server.purchases import docs, service, transitions
from server.validation import (
    Field,
    FieldError,
    date_value,
    money,
    pagination_schema,
    path_uuid,
    query_values,
    raise_if,
    string,
    uuid_value,
    validate,
)

bp = Blueprint("purchases", url_prefix="/api/v1")

DEFAULT_LIMIT = 10


def currency_code(raw: Any) -> str:
    if not isinstance(raw, str):
        raise FieldError("Must be a string.")
    if len(raw) != 3:
        raise FieldError("Currency must be exactly 3 characters long.")
    return raw


# Validates the body and documents it (apidoc.describe reads it from the endpoint).
INGEST_BODY = {
    "external_id": Field(string(1, 255), doc={"type": "string", "minLength": 1, "maxLength": 255}),
    "user_id": Field(uuid_value, doc=docs.UUID),
    "merchant_id": Field(uuid_value, doc=docs.UUID),
    "amount": Field(money("Amount"), doc=docs.MONEY_IN),
    "currency": Field(currency_code, doc={"type": "string", "minLength": 3, "maxLength": 3, "example": "EUR"}),
}

ADMIN_LIST_QUERY = {
    **pagination_schema(DEFAULT_LIMIT),
    "status": Field(str, required=False),
    "user_id": Field(uuid_value, required=False),
    "merchant_id": Field(uuid_value, required=False),
    "start_date": Field(date_value, required=False),
    "end_date": Field(date_value, required=False),
}
OWN_LIST_QUERY = {**pagination_schema(DEFAULT_LIMIT), "status": Field(str, required=False)}


def _admin_list_query(request: Request) -> dict[str, Any]:
    """The list query with its cross-field rule, all violations reported together."""
    violations: list[dict[str, str]] = []
    values = validate(ADMIN_LIST_QUERY, query_values(query_args(request)), violations)
    start, end = values.get("start_date"), values.get("end_date")
    if start is not None and end is not None and start > end:
        violations.append(violation("start_date", "start_date must be on or before end_date."))
    raise_if(violations)
    return values


def _status_filter(values: dict[str, Any]) -> str | None:
    status = values.get("status")
    if status is not None and status not in service.STATUSES:
        raise service.invalid_status(status)
    return status


def _purchase_id(raw: str) -> str:
    purchase_id = path_uuid(raw)
    if purchase_id is None:
        raise not_found("purchase", raw)
    return purchase_id


LIST_PARAMS = [*docs.PAGINATION, docs.query("status", docs.PURCHASE_STATUS)]


@bp.post("/purchases")
@docs.describe(
    "Record a purchase of the caller",
    "purchases",
    {201: docs.PURCHASE_RESULT},
    description=(
        "Any active user (admins included) records their own purchase: `user_id` must be the caller's id, "
        "even for an admin (otherwise 403). `external_id` is the shop's order reference and is unique across "
        "the platform: sending it again gets 409 DUPLICATE_PURCHASE, never a second purchase. Only EUR is "
        "accepted (`currency` is case-insensitive; anything else is 422 UNSUPPORTED_CURRENCY). The offer is not "
        "chosen by the client (an `offer_id` in the body is ignored): it is the merchant's one active offer "
        "whose dates include today (UTC), and the merchant must be active (otherwise 422). The cashback is "
        "computed now (percentage of the amount, or the fixed amount, within the offer's monthly cap per user), "
        "held as pending in the caller's wallet, and confirmed or rejected later by the verification job. "
        "`merchant_id` comes from GET /api/v1/offers/active."
    ),
    errors=(400, 403, 409, 413, 415),
)
@endpoint(auth="user", body=INGEST_BODY)
async def ingest_purchase(request: Request, call: Call):
    if call.body["user_id"] != call.caller.id:
        raise forbidden(
            "You can only ingest purchases on your own behalf.",
            {"reason": "The user_id in the request does not match the authenticated user."},
        )
    result = await service.ingest(call.caller.id, call.body)
    return json_response(result, status=201)


@bp.get("/purchases")
@docs.describe(
    "List purchases (admin)",
    "purchases",
    {200: docs.page_of(docs.PURCHASE_OUT)},
    description=(
        "Every user's purchases, newest first (created_at DESC, then id DESC). Filters combine with AND; "
        "start_date and end_date are UTC days, both inclusive. 10 per page by default."
    ),
    errors=(403,),
    parameters=[
        *LIST_PARAMS,
        docs.query("user_id", docs.UUID),
        docs.query("merchant_id", docs.UUID),
        docs.query("start_date", {"type": "string", "format": "date"}),
        docs.query("end_date", {"type": "string", "format": "date"}),
    ],
)
@endpoint(auth="admin")
async def list_purchases(request: Request, call: Call):
    values = _admin_list_query(request)
    status = _status_filter(values)
    data, total = await service.list_purchases(
        offset=values["offset"],
        limit=values["limit"],
        status=status,
        user_id=values.get("user_id"),
        merchant_id=values.get("merchant_id"),
        start_date=values.get("start_date"),
        end_date=values.get("end_date"),
    )
    return json_response(page(data, values["offset"], values["limit"], total))


@bp.get("/users/me/purchases")
@docs.describe(
    "List the caller's purchases",
    "purchases",
    {200: docs.page_of(docs.PURCHASE_OUT)},
    description="Only the caller's purchases, newest first (created_at DESC, then id DESC). 10 per page by default.",
    parameters=LIST_PARAMS,
)
@endpoint(auth="user", query=OWN_LIST_QUERY)
async def list_own_purchases(request: Request, call: Call):
    status = _status_filter(call.query)
    data, total = await service.list_purchases(
        offset=call.query["offset"], limit=call.query["limit"], status=status, user_id=call.caller.id
    )
    return json_response(page(data, call.query["offset"], call.query["limit"], total))


@bp.get("/purchases/<purchase_id>")
@docs.describe(
    "A purchase (owner or admin)",
    "purchases",
    {200: docs.PURCHASE_OUT},
    description="The purchase and the status of its cashback. A user reads only their own (403 otherwise).",
    errors=(403, 404),
    parameters=[docs.path("purchase_id")],
)
@endpoint(auth="user")
async def get_purchase(request: Request, call: Call, purchase_id: str):
    result = await service.get_purchase(_purchase_id(purchase_id), call.caller.id, call.caller.is_admin)
    return json_response(result)


@bp.post("/purchases/<purchase_id>/confirmation")
@docs.describe(
    "Confirm a pending purchase (admin)",
    "purchases",
    {200: docs.PURCHASE_RESULT},
    description=(
        "Does by hand what the verification job does: the cashback moves from pending to available in the "
        "owner's wallet. Only a pending purchase can be confirmed (400 otherwise); feature flags are not consulted."
    ),
    errors=(400, 403, 404, 409),
    parameters=[docs.path("purchase_id")],
)
@endpoint(auth="admin")
async def confirm_purchase(request: Request, call: Call, purchase_id: str):
    result = await transitions.confirm_by_admin(_purchase_id(purchase_id), call.caller.id)
    return json_response(result)


@bp.patch("/purchases/<purchase_id>/reverse")
@docs.describe(
    "Reverse a pending or confirmed purchase (admin)",
    "purchases",
    {200: docs.PURCHASE_RESULT},
    description=(
        "Takes the cashback back out of the owner's wallet (pending, or available for a confirmed purchase). "
        "409 INSUFFICIENT_BALANCE when a confirmed purchase's cashback is no longer available (paid out)."
    ),
    errors=(400, 403, 404, 409),
    parameters=[docs.path("purchase_id")],
)
@endpoint(auth="admin")
async def reverse_purchase(request: Request, call: Call, purchase_id: str):
    result = await transitions.reverse_by_admin(_purchase_id(purchase_id), call.caller.id)
    return json_response(result)

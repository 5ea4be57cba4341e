"""/api/v1/merchants (admin): create, list, change status (API.md §3.3)."""

from sanic import Blueprint, Request

from server.apidoc import (
    PAGINATION,
    RATE,
    RATE_IN,
    STATUS_BODY,
    STATUS_OUT,
    UUID,
    describe,
    obj,
    page_of,
    query,
)
from server.endpoint import Call, endpoint
from server.http import json_response
from server.merchants import service
from server.validation import Field, body_bool, pagination_schema, path_uuid, query_bool, rate, string

bp = Blueprint("merchants", url_prefix="/api/v1")

CREATE_BODY = {
    "name": Field(string(1, 255, strip=True), doc={"type": "string", "minLength": 1, "maxLength": 255}),
    "default_cashback_percentage": Field(rate("Default cashback percentage"), doc=RATE_IN),
    "active": Field(body_bool, required=False, default=True, doc={"type": "boolean", "default": True}),
}

MERCHANT_OUT = obj(
    {"id": UUID, "name": {"type": "string"}, "default_cashback_percentage": RATE, "active": {"type": "boolean"}}
)


def list_query(request: Request):
    settings = request.app.ctx.settings
    return {
        **pagination_schema(settings.default_page_size, settings.max_page_size),
        "active": Field(query_bool, required=False),
    }


@bp.post("/merchants")
@describe(
    "Create a merchant",
    "merchants",
    201,
    MERCHANT_OUT,
    [400, 401, 403, 409, 415, 422],
    description=(
        "default_cashback_percentage between 0 and MAX_CASHBACK_PERCENTAGE (400 otherwise); names are unique "
        "ignoring case (409). Written to the audit log."
    ),
)
@endpoint(auth="admin", body=CREATE_BODY)
async def create_merchant(request: Request, call: Call):
    merchant = await service.create(
        call.caller.id,
        request.app.ctx.settings.max_cashback_percentage,
        call.body["name"],
        call.body["default_cashback_percentage"],
        call.body["active"],
    )
    return json_response(merchant, status=201)


@bp.get("/merchants")
@describe(
    "List merchants",
    "merchants",
    200,
    page_of(MERCHANT_OUT),
    [401, 403, 422],
    params=[*PAGINATION, query("active", {"type": "boolean"})],
    description="Sorted by lower(name), then id.",
)
@endpoint(auth="admin", query=list_query)
async def list_merchants(request: Request, call: Call):
    q = call.query
    return json_response(await service.list_page(q["offset"], q["limit"], q.get("active")))


@bp.patch("/merchants/<merchant_id>/status")
@describe(
    "Activate or deactivate a merchant",
    "merchants",
    200,
    STATUS_OUT,
    [401, 403, 404, 415, 422],
    description="Idempotent. An inactive merchant's offers leave /offers/active and take no purchases.",
)
@endpoint(auth="admin", body=STATUS_BODY)
async def set_merchant_status(request: Request, call: Call, merchant_id: str):
    try:
        result = await service.set_status(call.caller.id, path_uuid(merchant_id), merchant_id, call.body["status"])
    finally:
        request.app.ctx.catalogue.invalidate()  # its offers leave /offers/active at once
    return json_response(result)

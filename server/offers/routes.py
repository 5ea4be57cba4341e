"""/api/v1/offers: create, list, active list, details, status (API.md §3.4).

`/offers/active` is registered before `/offers/<offer_id>`, and the literal segment wins anyway.
"""

from sanic import Blueprint, Request

from server.apidoc import (
    DATE,
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
from server.endpoint import Call, endpoint, query_args
from server.http import json_body_response, json_response
from server.offers import service
from server.validation import (
    Field,
    FieldError,
    choice,
    date_value,
    pagination_schema,
    path_uuid,
    rate,
    uuid_value,
)

bp = Blueprint("offers", url_prefix="/api/v1")

CASHBACK_TYPE = {"type": "string", "enum": ["percent", "fixed"]}
CREATE_BODY = {
    "merchant_id": Field(uuid_value, doc=UUID),
    "cashback_type": Field(choice("percent", "fixed"), doc=CASHBACK_TYPE),
    "cashback_value": Field(rate("Cashback value"), doc=RATE_IN),
    "start_date": Field(date_value, doc=DATE),
    "end_date": Field(date_value, doc=DATE),
    "monthly_cap": Field(rate("Monthly cap"), doc=RATE_IN),
}
OFFER_STATUS = {"type": "string", "enum": ["active", "inactive"]}
OFFER_OUT = obj(
    {
        "id": UUID,
        "merchant_id": UUID,
        "cashback_type": CASHBACK_TYPE,
        "cashback_value": RATE,
        "start_date": DATE,
        "end_date": DATE,
        "monthly_cap_per_user": RATE,
        "status": OFFER_STATUS,
    }
)
ACTIVE_OFFER_PROPERTIES = {
    "id": UUID,
    "merchant_id": {**UUID, "description": "What a client sends as `merchant_id` when it records a purchase."},
    "merchant_name": {"type": "string"},
    "cashback_type": CASHBACK_TYPE,
    "cashback_value": RATE,
    "monthly_cap": RATE,
    "start_date": DATE,
    "end_date": DATE,
}
ACTIVE_OFFER_OUT = obj(ACTIVE_OFFER_PROPERTIES)
OFFER_DETAILS_OUT = obj({**ACTIVE_OFFER_PROPERTIES, "status": OFFER_STATUS})


def _date_from_not_after(raw_date_to: str | None):
    """date_from, which must not be after a valid date_to (one more violation, reported with the rest)."""

    def parse(raw):
        value = date_value(raw)
        if raw_date_to is not None:
            try:
                date_to = date_value(raw_date_to)
            except FieldError:
                return value  # date_to reports its own violation
            if value > date_to:
                raise FieldError(f"date_from must not be after date_to. Got date_from='{value}', date_to='{date_to}'.")
        return value

    return parse


def list_query(request: Request):
    settings = request.app.ctx.settings
    return {
        **pagination_schema(settings.default_page_size, settings.max_page_size),
        "status": Field(choice("active", "inactive"), required=False),
        "merchant_id": Field(uuid_value, required=False),
        "date_from": Field(_date_from_not_after(query_args(request).get("date_to")), required=False),
        "date_to": Field(date_value, required=False),
    }


def page_query(request: Request):
    settings = request.app.ctx.settings
    return pagination_schema(settings.default_page_size, settings.max_page_size)


@bp.post("/offers")
@describe(
    "Create an offer (active)",
    "offers",
    201,
    OFFER_OUT,
    [400, 401, 403, 404, 409, 415, 422],
    description=(
        "percent: cashback_value in (0, MAX_CASHBACK_PERCENTAGE]; fixed: a euro amount > 0. start_date today or "
        "later, end_date not before it, monthly_cap (per user and calendar month) > 0: every broken rule in one "
        "400. The merchant must exist (404), be active (422) and have no active offer (409)."
    ),
)
@endpoint(auth="admin", body=CREATE_BODY)
async def create_offer(request: Request, call: Call):
    try:
        offer = await service.create(call.caller.id, request.app.ctx.settings.max_cashback_percentage, call.body)
    finally:
        request.app.ctx.catalogue.invalidate()  # this instance reads its own write at once
    return json_response(offer, status=201)


@bp.get("/offers")
@describe(
    "List offers",
    "offers",
    200,
    page_of(OFFER_OUT),
    [401, 422],
    params=[
        *PAGINATION,
        query("status", OFFER_STATUS),
        query("merchant_id", UUID),
        query("date_from", DATE),
        query("date_to", DATE),
    ],
    description="Sorted by start_date DESC, then id; inactive and expired offers included.",
)
@endpoint(auth="user", query=list_query)
async def list_offers(request: Request, call: Call):
    q = call.query
    return json_response(
        await service.list_page(
            q["offset"], q["limit"], q.get("status"), q.get("merchant_id"), q.get("date_from"), q.get("date_to")
        )
    )


@bp.get("/offers/active")
@describe(
    "List offers valid today",
    "offers",
    200,
    page_of(ACTIVE_OFFER_OUT),
    [401, 422],
    params=PAGINATION,
    description="Active offers of active merchants with start_date <= today <= end_date (UTC), "
    "sorted by merchant name (case-insensitive), then id.",
)
@endpoint(auth="user", query=page_query)
async def list_active_offers(request: Request, call: Call):
    today, offset, limit = service.utc_today(), call.query["offset"], call.query["limit"]
    body = await request.app.ctx.catalogue.page(
        today, offset, limit, lambda: service.active_page_json(today, offset, limit)
    )
    return json_body_response(body)


@bp.get("/offers/<offer_id>")
@describe(
    "Offer details",
    "offers",
    200,
    OFFER_DETAILS_OUT,
    [401, 403, 404],
    description=(
        "Any user reads an active offer of an active merchant, whatever its dates; only admins read the others "
        "(403). merchant_id is what a purchase needs."
    ),
)
@endpoint(auth="user")
async def get_offer(request: Request, call: Call, offer_id: str):
    return json_response(await service.details(path_uuid(offer_id), offer_id, call.caller.is_admin))


@bp.patch("/offers/<offer_id>/status")
@describe(
    "Activate or deactivate an offer",
    "offers",
    200,
    STATUS_OUT,
    [401, 403, 404, 409, 415, 422],
    description=(
        "Deactivation always works. Activation needs an active merchant (422), an end_date not in the past "
        "(422 OFFER_EXPIRED) and no other active offer for the merchant (409)."
    ),
)
@endpoint(auth="admin", body=STATUS_BODY)
async def set_offer_status(request: Request, call: Call, offer_id: str):
    try:
        result = await service.set_status(call.caller.id, path_uuid(offer_id), offer_id, call.body["status"])
    finally:
        request.app.ctx.catalogue.invalidate()
    return json_response(result)

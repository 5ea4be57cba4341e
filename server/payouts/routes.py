"""/api/v1/users/me/payouts and /api/v1/payouts (API.md §3.7)."""

from __future__ import annotations

from sanic import Blueprint, Request

from server.endpoint import Call, endpoint
from server.errors import not_found, schema_error, violation
from server.http import json_response, page
from server.http import money as render_money
from server.payouts import service
from server.purchases import docs
from server.validation import Field, choice, money, pagination_schema, path_uuid, string, uuid_value

bp = Blueprint("payouts", url_prefix="/api/v1")

DEFAULT_LIMIT = 10
# Each validates its body and documents it (apidoc.describe reads it from the endpoint).
REQUEST_BODY = {"amount": Field(money("Amount", positive=False), doc=docs.MONEY_IN)}
PROCESS_BODY = {
    "status": Field(choice("completed", "failed"), doc={"type": "string", "enum": ["completed", "failed"]}),
    "external_reference": Field(
        string(0, 255), required=False, nullable=True, doc={"type": "string", "maxLength": 255}
    ),
}
OWN_LIST_QUERY = {**pagination_schema(DEFAULT_LIMIT), "status": Field(choice(*service.STATUSES), required=False)}
ADMIN_LIST_QUERY = {**OWN_LIST_QUERY, "user_id": Field(uuid_value, required=False)}
LIST_PARAMS = [*docs.PAGINATION, docs.query("status", docs.PAYOUT_STATUS)]


@bp.post("/users/me/payouts")
@docs.describe(
    "Request a payout of available cashback",
    "payouts",
    {201: docs.PAYOUT_OUT},
    description=(
        "Moves `amount` (at least PAYOUT_MINIMUM_AMOUNT, 10.00 by default) out of the caller's available "
        "balance until an admin completes or fails the payout. One requested payout at a time (409 otherwise)."
    ),
    errors=(400, 409, 413, 415),
)
@endpoint(auth="user", body=REQUEST_BODY)
async def request_payout(request: Request, call: Call):
    minimum = request.app.ctx.settings.payout_minimum_amount
    amount = call.body["amount"]
    if amount < minimum:
        raise schema_error([violation("amount", f"Minimum payout amount is {render_money(minimum)}.")])
    return json_response(await service.request_payout(call.caller.id, amount), status=201)


@bp.get("/users/me/payouts")
@docs.describe(
    "List the caller's payouts",
    "payouts",
    {200: docs.page_of(docs.PAYOUT_OUT)},
    description="Newest first (requested_at DESC, then id DESC). 10 per page by default.",
    parameters=LIST_PARAMS,
)
@endpoint(auth="user", query=OWN_LIST_QUERY)
async def list_own_payouts(request: Request, call: Call):
    q = call.query
    data, total = await service.list_payouts(
        offset=q["offset"], limit=q["limit"], status=q.get("status"), user_id=call.caller.id
    )
    return json_response(page(data, q["offset"], q["limit"], total))


@bp.get("/payouts")
@docs.describe(
    "List payouts of every user (admin)",
    "payouts",
    {200: docs.page_of(docs.PAYOUT_OUT)},
    description="Newest first (requested_at DESC, then id DESC), optionally one user's. 10 per page by default.",
    errors=(403,),
    parameters=[*LIST_PARAMS, docs.query("user_id", docs.UUID)],
)
@endpoint(auth="admin", query=ADMIN_LIST_QUERY)
async def list_payouts(request: Request, call: Call):
    q = call.query
    data, total = await service.list_payouts(
        offset=q["offset"], limit=q["limit"], status=q.get("status"), user_id=q.get("user_id")
    )
    return json_response(page(data, q["offset"], q["limit"], total))


@bp.patch("/payouts/<payout_id>")
@docs.describe(
    "Complete or fail a requested payout (admin)",
    "payouts",
    {200: docs.PAYOUT_OUT},
    description=(
        "completed: the amount becomes paid; failed: it returns to the owner's available balance. Only a "
        "requested payout can change (400 INVALID_PAYOUT_TRANSITION otherwise)."
    ),
    errors=(400, 403, 404, 409, 413, 415),
    parameters=[docs.path("payout_id")],
)
@endpoint(auth="admin", body=PROCESS_BODY)
async def process_payout(request: Request, call: Call, payout_id: str):
    parsed_id = path_uuid(payout_id)
    if parsed_id is None:
        raise not_found("payout", payout_id)
    result = await service.process_payout(
        parsed_id, call.caller.id, call.body["status"], call.body.get("external_reference")
    )
    return json_response(result)

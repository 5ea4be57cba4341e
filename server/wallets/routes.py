"""/api/v1/users/me/wallet and its transactions (API.md §3.6): always the caller's own."""

from __future__ import annotations

from sanic import Blueprint, Request

from server.endpoint import Call, endpoint
from server.http import json_response, page
from server.purchases import docs
from server.validation import pagination_schema
from server.wallets import service

bp = Blueprint("wallets", url_prefix="/api/v1")

TRANSACTIONS_QUERY = pagination_schema(10)


@bp.get("/users/me/wallet")
@docs.describe(
    "The caller's wallet",
    "wallets",
    {200: docs.WALLET_OUT},
    description=(
        "pending: cashback of purchases not yet verified; available: can be paid out; paid: paid out; "
        "reserved: the payouts still requested (already taken out of available)."
    ),
)
@endpoint(auth="user", about_caller=service.SUMMARY_OF_CALLER)
async def wallet_summary(request: Request, call: Call):
    return json_response(service.summary(call.about_caller))


@bp.get("/users/me/wallet/transactions")
@docs.describe(
    "The caller's cashback transactions",
    "wallets",
    {200: docs.page_of(docs.TRANSACTION_OUT)},
    description="One credit per purchase, newest first (created_at DESC, then id DESC). 10 per page by default.",
    parameters=docs.PAGINATION,
)
@endpoint(auth="user", query=TRANSACTIONS_QUERY)
async def wallet_transactions(request: Request, call: Call):
    offset, limit = call.query["offset"], call.query["limit"]
    data, total = await service.transactions(call.caller.id, offset, limit)
    return json_response(page(data, offset, limit, total))

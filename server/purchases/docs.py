"""OpenAPI descriptions for the money endpoints (purchases, wallets, payouts): JSON schemas of
their requests and responses, served at /docs/openapi.json (OpenAPI 3.0: nullable
values use `nullable: true`)."""

from __future__ import annotations

from typing import Any

from server import apidoc
from server.apidoc import ERROR, TIMESTAMP, UUID, page_of, path, query  # noqa: F401 - used by the routes
from server.apidoc import MONEY_PAGINATION as PAGINATION  # noqa: F401 - the money lists default to 10

MONEY_OUT = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "example": "3.75"}
MONEY_IN = {"oneOf": [{"type": "string", "example": "75.00"}, {"type": "number"}]}
NULLABLE_TIMESTAMP = {"type": "string", "format": "date-time", "nullable": True}

PURCHASE_STATUS = {"type": "string", "enum": ["pending", "confirmed", "rejected", "reversed"]}
PURCHASE_OUT = {
    "type": "object",
    "required": [
        "id",
        "external_id",
        "user_id",
        "merchant_id",
        "merchant_name",
        "offer_id",
        "amount",
        "currency",
        "status",
        "cashback_amount",
        "cashback_status",
        "created_at",
    ],
    "properties": {
        "id": UUID,
        "external_id": {"type": "string"},
        "user_id": UUID,
        "merchant_id": UUID,
        "merchant_name": {"type": "string"},
        "offer_id": UUID,
        "amount": MONEY_OUT,
        "currency": {"type": "string"},
        "status": PURCHASE_STATUS,
        "cashback_amount": MONEY_OUT,
        "cashback_status": {"type": "string", "enum": ["pending", "available", "reversed", None], "nullable": True},
        "created_at": TIMESTAMP,
    },
}
PURCHASE_RESULT = {
    "type": "object",
    "required": ["id", "status", "cashback_amount"],
    "properties": {"id": UUID, "status": PURCHASE_STATUS, "cashback_amount": MONEY_OUT},
}
WALLET_OUT = {
    "type": "object",
    "required": ["pending_balance", "available_balance", "paid_balance", "reserved_balance"],
    "properties": {
        name: MONEY_OUT for name in ("pending_balance", "available_balance", "paid_balance", "reserved_balance")
    },
}
TRANSACTION_OUT = {
    "type": "object",
    "required": ["id", "type", "amount", "status", "related_purchase_id", "created_at"],
    "properties": {
        "id": UUID,
        "type": {"type": "string", "enum": ["cashback_credit"]},
        "amount": MONEY_OUT,
        "status": {"type": "string", "enum": ["pending", "available", "reversed"]},
        "related_purchase_id": UUID,
        "created_at": TIMESTAMP,
    },
}
PAYOUT_STATUS = {"type": "string", "enum": ["requested", "completed", "failed"]}
PAYOUT_OUT = {
    "type": "object",
    "required": ["id", "user_id", "amount", "status", "requested_at", "processed_at", "external_reference"],
    "properties": {
        "id": UUID,
        "user_id": UUID,
        "amount": MONEY_OUT,
        "status": PAYOUT_STATUS,
        "requested_at": TIMESTAMP,
        "processed_at": NULLABLE_TIMESTAMP,
        "external_reference": {"type": "string", "nullable": True},
    },
}


def describe(
    summary: str,
    tag: str,
    responses: dict[int, dict[str, Any]],
    *,
    errors: tuple[int, ...] = (),
    parameters: list[dict[str, Any]] | None = None,
    description: str | None = None,
):
    """One money operation: its one success response, and 401/422 plus `errors` in the error envelope."""
    ((status, schema),) = responses.items()
    return apidoc.describe(
        summary, tag, status, schema, {401, 422, *errors}, params=parameters, description=description
    )

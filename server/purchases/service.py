"""Purchases: ingestion with the monthly cap, and reads. The state transitions of API.md
§4.4/§4.5 (confirm, reject, reverse) live in server/purchases/transitions.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from loguru import logger
from tortoise.queryset import QuerySet, ValuesQuery

from server import db
from server.errors import ApiError, balance_limit_exceeded, forbidden, not_found
from server.http import money
from server.pagination import page_of
from server.purchases import counts, own_page
from server.purchases.models import Purchase

STATUSES = ("pending", "confirmed", "rejected", "reversed")
REVERSIBLE_FROM = ["pending", "confirmed"]

# A purchase as lists and details show it: its own columns, the merchant's name and the cashback
# transaction's status read through the relations.
DETAIL_FIELDS = "id external_id user_id merchant_id offer_id amount currency status cashback_amount created_at".split()
DETAIL_RELATED = {"merchant_name": "merchant__name", "cashback_status": "cashback_transaction__status"}
NEWEST_FIRST = ("-created_at", "-id")

# Ingestion is one statement, one round trip after authentication: record_purchase()
# (server/purchases/sql/record_purchase.sql, reading the month's running total) takes the caller's wallet lock,
# reads in a fresh snapshot after it, applies checks 3-7, computes the cashback with the cap and
# writes, all inside PostgreSQL, so the lock is never held across the network. It answers with an
# outcome; the rules live there, the messages and warnings here.
# Raw SQL kept for bench row purchase_ingest (docs/adr/0003-ingestion-inside-postgresql.md).
RECORD_PURCHASE_SQL = "SELECT * FROM record_purchase($1, $2, $3, $4, $5)"


class WalletInvariantError(RuntimeError):
    """A movement would take a balance below zero although the rules say it cannot: the wallet
    no longer matches its transactions. Logged as a business warning; the transaction rolls back."""


def warn(reason: str, message: str, **context: Any) -> None:
    """A business warning (operation-plan §4.1); context carries ids and amounts, never secrets."""
    logger.bind(event="business.warning", reason=reason, **context).warning(message)


# -- rendering ------------------------------------------------------------------------------
def purchase_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "external_id": row["external_id"],
        "user_id": str(row["user_id"]),
        "merchant_id": str(row["merchant_id"]),
        "merchant_name": row["merchant_name"],
        "offer_id": str(row["offer_id"]),
        "amount": money(row["amount"]),
        "currency": row["currency"].strip(),
        "status": row["status"],
        "cashback_amount": money(row["cashback_amount"]),
        "cashback_status": row["cashback_status"],
        "created_at": row["created_at"],
    }


def invalid_status(value: str) -> ApiError:
    return ApiError(
        422,
        "INVALID_PURCHASE_STATUS",
        f"'{value}' is not a valid purchase status. Allowed values: {', '.join(STATUSES)}.",
        {"allowed_values": list(STATUSES)},
    )


# -- ingestion --------------------------------------------------------------------------------
def duplicate_error(external_id: str, existing: Mapping[str, Any] | None, caller_id: str) -> ApiError:
    """The 409 never reveals another user's purchase: only the caller's own gets the details."""
    details: dict[str, Any] = {"external_id": external_id}
    if existing is not None and str(existing["user_id"]) == caller_id:
        details.update(
            {
                "purchase_id": str(existing["id"]),
                "previously_created_at": existing["created_at"],
                "previously_processed_amount": money(existing["amount"]),
                "action": "The purchase was already recorded (purchase_id); nothing was recorded again, and a retry gets this same 409.",
            }
        )
    return ApiError(
        409, "DUPLICATE_PURCHASE", f"A purchase with external ID '{external_id}' has already been processed.", details
    )


def user_not_eligible(user_id: str) -> ApiError:
    return ApiError(
        422,
        "USER_NOT_ELIGIBLE",
        "User is not eligible to ingest purchases.",
        {
            "user_id": user_id,
            "reason": "Purchase cannot be ingested for users who are non-existent or inactive.",
        },
    )


def merchant_not_eligible(merchant_id: str) -> ApiError:
    return ApiError(
        422,
        "MERCHANT_NOT_ELIGIBLE",
        "Merchant is not eligible to process purchases.",
        {
            "merchant_id": merchant_id,
            "reason": "Purchases cannot be processed for merchants who are non-existent or inactive.",
        },
    )


def offer_not_available(merchant_id: str) -> ApiError:
    return ApiError(
        422,
        "OFFER_NOT_AVAILABLE",
        f"No active offer is available for merchant '{merchant_id}'.",
        {
            "merchant_id": merchant_id,
            "reason": "Purchases cannot be processed without a valid active offer for the merchant.",
        },
    )


def unsupported_currency(currency: str) -> ApiError:
    return ApiError(
        422,
        "UNSUPPORTED_CURRENCY",
        f"Currency '{currency}' is not supported. Only EUR is accepted at this time.",
        {"currency": currency, "reason": "The platform currently processes purchases in EUR only."},
    )


def _refusal(found: asyncpg.Record, caller_id: str, external_id: str, merchant_id: str, currency: str) -> ApiError:
    """The error of the check record_purchase() stopped at, with the business warning it logs."""
    outcome = found["outcome"]
    if outcome == "duplicate":
        return duplicate_error(
            external_id,
            {
                "id": found["duplicate_id"],
                "user_id": found["duplicate_user_id"],
                "created_at": found["duplicate_created_at"],
                "amount": found["duplicate_amount"],
            },
            caller_id,
        )
    if outcome == "currency":
        return unsupported_currency(currency)
    if outcome == "user":
        return user_not_eligible(caller_id)
    if outcome == "merchant":
        return merchant_not_eligible(merchant_id)
    if outcome == "offer_missing":
        warn(
            "offer_unavailable",
            "purchase attempted for a merchant without an active offer",
            merchant_id=merchant_id,
            user_id=caller_id,
        )
        return offer_not_available(merchant_id)
    if outcome in ("offer_expired", "offer_not_started"):
        warn(
            outcome,
            "purchase attempted on an offer outside its validity window",
            merchant_id=merchant_id,
            offer_id=str(found["active_offer_id"]),
            user_id=caller_id,
            start_date=str(found["offer_start_date"]),
            end_date=str(found["offer_end_date"]),
        )
        return offer_not_available(merchant_id)
    raise RuntimeError(f"record_purchase answered an unknown outcome {outcome!r}")


async def ingest(caller_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /purchases after the schema and the ownership check: checks 3-7, then the effect,
    in one statement (record_purchase, migrations 3 and 4)."""
    external_id, merchant_id, currency = body["external_id"], body["merchant_id"], body["currency"]
    try:
        found = await db.fetchrow(RECORD_PURCHASE_SQL, caller_id, external_id, merchant_id, body["amount"], currency)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != "uq_purchases_external_id":
            raise
        # A concurrent request of another user committed the same external_id first (the function's
        # insert waited for it, then failed; its transaction rolled back): answer like check 3.
        existing = (
            await Purchase.filter(external_id=external_id).first().values("id", "user_id", "created_at", "amount")
        )
        raise duplicate_error(external_id, existing, caller_id) from None
    except asyncpg.NumericValueOutOfRangeError:
        # The cashback would overflow the pending balance; the statement rolled back.
        raise balance_limit_exceeded("pending", {"user_id": caller_id, "external_id": external_id}) from None
    if found is None:  # the function returns one row, always
        raise RuntimeError("record_purchase returned no row")
    if found["outcome"] != "recorded":
        raise _refusal(found, caller_id, external_id, merchant_id, currency.upper())
    return {"id": str(found["new_purchase_id"]), "status": "pending", "cashback_amount": money(found["credited"])}


# -- reads ------------------------------------------------------------------------------------
async def list_purchases(
    *,
    offset: int,
    limit: int,
    status: str | None = None,
    user_id: str | None = None,
    merchant_id: str | None = None,
    start_date=None,
    end_date=None,
) -> tuple[list, int]:
    if user_id is not None and merchant_id is None and start_date is None and end_date is None:
        return await user_purchases(user_id, status, offset, limit)
    query = Purchase.all()
    if status is not None:
        query = query.filter(status=status)
    if user_id is not None:
        query = query.filter(user_id=user_id)
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    if start_date is not None:
        query = query.filter(created_at__gte=utc_midnight(start_date))
    if end_date is not None and end_date < date.max:  # every timestamp is before the day after 9999-12-31
        query = query.filter(created_at__lt=utc_midnight(end_date + timedelta(days=1)))
    # Status and UTC days alone: the day counts; a merchant or a user with dates: count the rows.
    by_day = counts.day_total_of(status, start_date, end_date) if user_id is None and merchant_id is None else None
    # The page's ids first, index-only where the filter's index ends in (created_at, id), then its
    # rows: the planner, which assumes a status is spread evenly in time, would otherwise walk the
    # time index past every newer row of another status (the pending head of the list).
    return await _page(query, offset, limit, by_day, window=(query, offset))


async def user_purchases(user_id: str, status: str | None, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """One user's purchases (with a status or not), raw SQL for its bench rows (server/purchases/own_page.py)."""
    rows, total = await own_page.own_page(user_id, status, offset, limit)
    return [purchase_out(row) for row in rows], total


async def _page(
    query: QuerySet[Purchase],
    offset: int,
    limit: int,
    total: ValuesQuery[Any] | None,
    window: tuple[QuerySet[Purchase], int] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of purchases as API.md shows them, newest first (server/pagination.page_of)."""
    rows, found = await page_of(
        query,
        fields=DETAIL_FIELDS,
        related=DETAIL_RELATED,
        order_by=NEWEST_FIRST,
        offset=offset,
        limit=limit,
        total=total,
        window=window,
    )
    return [purchase_out(row) for row in rows], found


def utc_midnight(day: date) -> datetime:
    """The start of a calendar day in UTC: date filters of API.md §3.5 are UTC days."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def get_purchase(purchase_id: str, caller_id: str, caller_is_admin: bool) -> dict[str, Any]:
    row = await Purchase.filter(id=purchase_id).first().values(*DETAIL_FIELDS, **DETAIL_RELATED)
    if row is None:
        raise not_found("purchase", purchase_id)
    if not caller_is_admin and str(row["user_id"]) != caller_id:
        raise forbidden(
            "You do not have permission to view this purchase. Purchase belongs to another user.",
            {"purchase_id": purchase_id},
        )
    return purchase_out(row)

"""Cashback offers (API.md §3.4, §4.2): one active offer per merchant, dated windows, audited changes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server import db
from server.audit import service as audit
from server.errors import ApiError, forbidden, not_found, rules_error, violation
from server.http import dumps, page, rate, rate_text
from server.merchants.models import Merchant
from server.merchants.service import render_limit
from server.offers.models import Offer
from server.pagination import page_of

ONE_ACTIVE_INDEX = "uq_offers_one_active_per_merchant"
OFFER_FIELDS = (
    "id",
    "merchant_id",
    "percentage",
    "fixed_amount",
    "start_date",
    "end_date",
    "monthly_cap_per_user",
    "active",
)
ACTIVE_ACTION = "Deactivate the existing offer before creating a new one."

# /offers/active: the page and its total in one statement (one round trip, one snapshot), no N+1;
# an offset past the end still yields one row, the total, with NULL columns.
# Raw SQL kept for bench row offers_active (a catalogue cache miss): the page and its total in one statement.
ACTIVE_PAGE_SQL = """
SELECT counted.total, page.* FROM (
    SELECT count(*) AS total FROM offers o JOIN merchants m ON m.id = o.merchant_id
    WHERE o.active AND m.active AND o.start_date <= $1 AND o.end_date >= $1
) AS counted LEFT JOIN LATERAL (
    SELECT o.id, o.merchant_id, m.name AS merchant_name, o.percentage, o.fixed_amount,
           o.monthly_cap_per_user, o.start_date, o.end_date
    FROM offers o JOIN merchants m ON m.id = o.merchant_id
    WHERE o.active AND m.active AND o.start_date <= $1 AND o.end_date >= $1
    ORDER BY lower(m.name), o.id LIMIT $2 OFFSET $3
) AS page ON TRUE
"""

# The details of one offer: a queryset, the merchant's name and state read through the relation (one join).
DETAILS_COLUMNS = (
    "id",
    "merchant_id",
    "active",
    "percentage",
    "fixed_amount",
    "monthly_cap_per_user",
    "start_date",
    "end_date",
)


def utc_today() -> date:
    return datetime.now(UTC).date()


def cashback(row: Mapping[str, Any]) -> tuple[str, Any]:
    """(cashback_type, cashback_value): a fixed amount wins over the percentage (§3 derived fields)."""
    if row["fixed_amount"] is not None:
        return "fixed", rate(row["fixed_amount"])
    return "percent", rate(row["percentage"])


def offer_out(row: Mapping[str, Any]) -> dict[str, Any]:
    kind, value = cashback(row)
    return {
        "id": str(row["id"]),
        "merchant_id": str(row["merchant_id"]),
        "cashback_type": kind,
        "cashback_value": value,
        "start_date": row["start_date"],
        "end_date": row["end_date"],
        "monthly_cap_per_user": rate(row["monthly_cap_per_user"]),
        "status": "active" if row["active"] else "inactive",
    }


def active_offer_out(row: Mapping[str, Any]) -> dict[str, Any]:
    kind, value = cashback(row)
    return {
        "id": str(row["id"]),
        "merchant_id": str(row["merchant_id"]),
        "merchant_name": row["merchant_name"],
        "cashback_type": kind,
        "cashback_value": value,
        "monthly_cap": rate(row["monthly_cap_per_user"]),
        "start_date": row["start_date"],
        "end_date": row["end_date"],
    }


def offer_rule_violations(
    max_percentage: Decimal,
    today: date,
    cashback_type: str,
    value: Decimal,
    start: date,
    end: date,
    monthly_cap: Decimal,
) -> list[dict[str, str]]:
    """Every failing offer rule of §3.4, in the table's order."""
    found = []
    if cashback_type == "percent" and not Decimal(0) < value <= max_percentage:
        found.append(
            violation(
                "cashback_value",
                f"Percentage must be between 0 (exclusive) and {render_limit(max_percentage)} (inclusive).",
            )
        )
    if cashback_type == "fixed" and not value > 0:
        found.append(violation("cashback_value", "Fixed amount must be greater than 0."))
    if start < today:
        found.append(violation("start_date", f"Start date must be today or a future date. Got: '{start}'."))
    if end < start:
        found.append(violation("end_date", f"End date must be after start date. Got start='{start}', end='{end}'."))
    if not monthly_cap > 0:
        found.append(violation("monthly_cap", f"Monthly cap must be positive. Got: {rate_text(monthly_cap)}."))
    return found


def merchant_not_active(merchant_id: str, activating_offer_id: str | None = None) -> ApiError:
    """On creation, API.md §3.4's exact text; on activation (same code, no text in the spec),
    a message that names what was refused."""
    if activating_offer_id is not None:
        return ApiError(
            422,
            "MERCHANT_NOT_ACTIVE",
            f"Cannot activate offer '{activating_offer_id}'. Merchant '{merchant_id}' is not active.",
            {
                "merchant_id": str(merchant_id),
                "offer_id": str(activating_offer_id),
                "action": "Activate the merchant before activating its offers.",
            },
        )
    return ApiError(
        422,
        "MERCHANT_NOT_ACTIVE",
        f"Cannot create offer for merchant '{merchant_id}'. Merchant is not active.",
        {"merchant_id": str(merchant_id), "action": "Activate the merchant before creating offers."},
    )


def active_offer_exists(merchant_id: str, existing_offer_id: Any) -> ApiError:
    return ApiError(
        409,
        "ACTIVE_OFFER_ALREADY_EXISTS",
        f"An active offer already exists for merchant '{merchant_id}'. {ACTIVE_ACTION}",
        {
            "merchant_id": str(merchant_id),
            "existing_offer_id": str(existing_offer_id) if existing_offer_id is not None else None,
            "action": ACTIVE_ACTION,
        },
    )


async def _active_offer_id(merchant_id: str, tx: BaseDBAsyncClient | None = None) -> uuid.UUID | None:
    offer = Offer.filter(merchant_id=merchant_id, active=True).using_db(tx).first()
    return cast("uuid.UUID | None", await offer.values_list("id", flat=True))


async def _merchant_active_locked(tx: BaseDBAsyncClient, merchant_id: str) -> bool | None:
    """The merchant's `active`, its row locked (FOR NO KEY UPDATE) so that a concurrent deactivation
    of the merchant waits for this offer change, or this change for it; None: no such merchant."""
    merchant = await Merchant.filter(id=merchant_id).select_for_update(no_key=True).using_db(tx).first()
    return merchant.active if merchant is not None else None


def _lost_race_to(error: IntegrityError) -> bool:
    return getattr(error.__cause__, "constraint_name", None) == ONE_ACTIVE_INDEX


async def _lost_race(merchant_id: str) -> ApiError:
    # The partial unique index refused a second active offer; name the winner after the rollback.
    return active_offer_exists(merchant_id, await _active_offer_id(merchant_id))


async def create(admin_id: str, max_percentage: Decimal, body: dict[str, Any]) -> dict[str, Any]:
    merchant_id = body["merchant_id"]
    violations = offer_rule_violations(
        max_percentage,
        utc_today(),
        body["cashback_type"],
        body["cashback_value"],
        body["start_date"],
        body["end_date"],
        body["monthly_cap"],
    )
    if violations:
        raise rules_error(violations)
    fixed = body["cashback_type"] == "fixed"
    try:
        async with in_transaction() as tx:
            merchant_active = await _merchant_active_locked(tx, merchant_id)
            if merchant_active is None:
                raise not_found("merchant", merchant_id)
            if not merchant_active:
                raise merchant_not_active(merchant_id)
            existing = await _active_offer_id(merchant_id, tx)
            if existing is not None:
                raise active_offer_exists(merchant_id, existing)
            offer = await Offer.create(
                using_db=tx,
                merchant_id=merchant_id,
                percentage=Decimal(0) if fixed else body["cashback_value"],
                fixed_amount=body["cashback_value"] if fixed else None,
                start_date=body["start_date"],
                end_date=body["end_date"],
                monthly_cap_per_user=body["monthly_cap"],
                active=True,
            )
            await audit.record(
                tx,
                actor_type="admin",
                actor_id=admin_id,
                action="OFFER_CREATED",
                resource_type="offer",
                resource_id=offer.id,
                details={
                    "merchant_id": merchant_id,
                    "cashback_type": body["cashback_type"],
                    "cashback_value": rate(body["cashback_value"]),
                    "start_date": body["start_date"].isoformat(),
                    "end_date": body["end_date"].isoformat(),
                    "monthly_cap": rate(body["monthly_cap"]),
                },
            )
    except IntegrityError as error:
        if _lost_race_to(error):
            raise await _lost_race(merchant_id) from None
        raise
    return offer_out({name: getattr(offer, name) for name in OFFER_FIELDS})


async def list_page(
    offset: int, limit: int, status: str | None, merchant_id: str | None, date_from: date | None, date_to: date | None
) -> dict[str, Any]:
    query = Offer.all()
    if status is not None:
        query = query.filter(active=status == "active")
    if merchant_id is not None:
        query = query.filter(merchant_id=merchant_id)
    if date_from is not None:
        query = query.filter(end_date__gte=date_from)
    if date_to is not None:
        query = query.filter(start_date__lte=date_to)
    rows, total = await page_of(query, fields=OFFER_FIELDS, order_by=("-start_date", "id"), offset=offset, limit=limit)
    return page([offer_out(row) for row in rows], offset, limit, total)


async def active_page(today: date, offset: int, limit: int) -> dict[str, Any]:
    rows = await db.fetch(ACTIVE_PAGE_SQL, today, limit, offset)
    total = rows[0]["total"] if rows else 0
    data = [active_offer_out(row) for row in rows if row["id"] is not None]
    return page(data, offset, limit, total)


async def active_page_json(today: date, offset: int, limit: int) -> bytes:
    """The rendered page, as server/offers/catalogue.py keeps it."""
    return dumps(await active_page(today, offset, limit))


async def details(offer_id: str | None, raw_id: str, is_admin: bool) -> dict[str, Any]:
    if offer_id is None:
        raise not_found("offer", raw_id)
    row = await (
        Offer.filter(id=offer_id)
        .first()
        .values(*DETAILS_COLUMNS, merchant_active="merchant__active", merchant_name="merchant__name")
    )
    if row is None:
        raise not_found("offer", offer_id)
    if not is_admin:
        reason = None
        if not row["active"]:
            reason = "This offer is inactive. Only admin users can view inactive offers."
        elif not row["merchant_active"]:
            reason = (
                "The merchant for this offer is inactive. Only admin users can view offers from inactive merchants."
            )
        if reason is not None:
            raise forbidden(
                "You do not have permission to view this offer.",
                {"resource_type": "offer", "resource_id": offer_id, "reason": reason},
            )
    return {**active_offer_out(row), "status": "active" if row["active"] else "inactive"}


def offer_expired(offer_id: str, end_date: date) -> ApiError:
    return ApiError(
        422,
        "OFFER_EXPIRED",
        f"Offer '{offer_id}' ended on {end_date} and cannot be activated.",
        {"offer_id": offer_id, "end_date": end_date.isoformat()},
    )


async def set_status(admin_id: str, offer_id: str | None, raw_id: str, status: str) -> dict[str, str]:
    if offer_id is None:
        raise not_found("offer", raw_id)
    wanted = status == "active"
    merchant_id = None
    try:
        async with in_transaction() as tx:
            this_offer = Offer.filter(id=offer_id).using_db(tx)
            offer = await this_offer.select_for_update().first()
            if offer is None:
                raise not_found("offer", offer_id)
            merchant_id = str(offer.merchant_id)
            if offer.active == wanted:
                return {"id": offer_id, "status": status}
            if wanted:
                if not await _merchant_active_locked(tx, merchant_id):
                    raise merchant_not_active(merchant_id, activating_offer_id=offer_id)
                if offer.end_date < utc_today():
                    raise offer_expired(offer_id, offer.end_date)
                existing = await _active_offer_id(merchant_id, tx)
                if existing is not None:
                    raise active_offer_exists(merchant_id, existing)
            await this_offer.update(active=wanted)
            await audit.record(
                tx,
                actor_type="admin",
                actor_id=admin_id,
                action="OFFER_STATUS_CHANGED",
                resource_type="offer",
                resource_id=offer_id,
                details={"merchant_id": merchant_id, "from": "active" if offer.active else "inactive", "to": status},
            )
    except IntegrityError as error:
        if _lost_race_to(error) and merchant_id is not None:
            raise await _lost_race(merchant_id) from None
        raise
    return {"id": offer_id, "status": status}

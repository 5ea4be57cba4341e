"""Arranging catalogue rows straight in the database (the API under test is not used to arrange)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg


def today() -> date:
    return datetime.now(UTC).date()


def days(n: int) -> date:
    return today() + timedelta(days=n)


async def insert_merchant(
    conn: asyncpg.Connection, name: str | None = None, active: bool = True, percentage: str = "5.00"
) -> str:
    merchant_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO merchants (id, name, default_cashback_percentage, active) VALUES ($1, $2, $3, $4)",
        merchant_id,
        name or f"Merchant-{merchant_id[:8]}",
        Decimal(percentage),
        active,
    )
    return merchant_id


async def insert_offer(
    conn: asyncpg.Connection,
    merchant_id: str,
    active: bool = True,
    percentage: str = "5.00",
    fixed_amount: str | None = None,
    start: date | None = None,
    end: date | None = None,
    cap: str = "50.00",
) -> str:
    offer_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO offers (id, merchant_id, percentage, fixed_amount, start_date, end_date, monthly_cap_per_user, "
        "active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        offer_id,
        merchant_id,
        Decimal(percentage),
        Decimal(fixed_amount) if fixed_amount else None,
        start or days(-30),
        end or days(300),
        Decimal(cap),
        active,
    )
    return offer_id


async def audit_rows(conn: asyncpg.Connection, resource_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT actor_type, actor_id::text, action, resource_type, details::text FROM audit_logs "
        "WHERE resource_id = $1 ORDER BY occurred_at, id",
        resource_id,
    )


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def fields_of(response) -> list[str]:
    return [v["field"] for v in error_of(response)["details"]["violations"]]

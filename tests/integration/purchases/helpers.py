"""Arranging money-path data straight in the database, and checking the wallet invariants."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from server.purchases.cap_totals import find_count_mismatches
from server.wallets.consistency import find_mismatches


def today() -> date:
    return datetime.now(UTC).date()


async def make_merchant(conn: asyncpg.Connection, name: str | None = None, active: bool = True) -> str:
    merchant_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO merchants (id, name, default_cashback_percentage, active) VALUES ($1, $2, 5, $3)",
        merchant_id,
        name or f"Shop-{merchant_id[:8]}",
        active,
    )
    return merchant_id


async def make_offer(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    percentage: str = "5",
    fixed: str | None = None,
    cap: str = "50",
    start: date | None = None,
    end: date | None = None,
    active: bool = True,
) -> str:
    offer_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO offers (id, merchant_id, percentage, fixed_amount, start_date, end_date, monthly_cap_per_user, "
        "active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        offer_id,
        merchant_id,
        Decimal(percentage),
        Decimal(fixed) if fixed else None,
        start or today() - timedelta(days=30),
        end or today() + timedelta(days=300),
        Decimal(cap),
        active,
    )
    return offer_id


async def make_shop(conn: asyncpg.Connection, **offer) -> tuple[str, str]:
    """An active merchant with an active, valid offer (5%, cap 50 unless told otherwise)."""
    merchant_id = await make_merchant(conn)
    return merchant_id, await make_offer(conn, merchant_id, **offer)


def purchase_body(
    account, merchant_id: str, amount="75.00", external_id: str | None = None, currency: str = "EUR"
) -> dict:
    return {
        "external_id": external_id or f"ext-{uuid.uuid4()}",
        "user_id": account.id,
        "merchant_id": merchant_id,
        "amount": amount,
        "currency": currency,
    }


async def ingest(client, account, merchant_id: str, amount="75.00", **kwargs):
    return await client.post(
        "/api/v1/purchases", token=account.token, json=purchase_body(account, merchant_id, amount, **kwargs)
    )


async def wallet_row(conn: asyncpg.Connection, user_id: str) -> dict[str, Decimal]:
    row = await conn.fetchrow(
        "SELECT pending_balance, available_balance, paid_balance FROM wallets WHERE user_id = $1", user_id
    )
    return {"pending": row["pending_balance"], "available": row["available_balance"], "paid": row["paid_balance"]}


async def set_balances(conn: asyncpg.Connection, user_id: str, available: str) -> None:
    """Give a user available cashback the consistent way: a confirmed purchase of that cashback."""
    merchant_id = await make_merchant(conn)
    offer_id = await make_offer(conn, merchant_id, fixed=available, cap="1000")
    purchase_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, status, "
        "cashback_amount) VALUES ($1, $2, $3, $4, $5, 100, 'EUR', 'confirmed', $6)",
        purchase_id,
        f"seed-{purchase_id}",
        user_id,
        merchant_id,
        offer_id,
        Decimal(available),
    )
    await conn.execute(
        "INSERT INTO cashback_transactions (user_id, purchase_id, amount, status) VALUES ($1, $2, $3, 'available')",
        user_id,
        purchase_id,
        Decimal(available),
    )
    await conn.execute(
        "UPDATE wallets SET available_balance = available_balance + $2 WHERE user_id = $1", user_id, Decimal(available)
    )


async def assert_consistent(conn: asyncpg.Connection) -> None:
    mismatches = await find_mismatches(conn)
    assert mismatches == [], [m.describe() for m in mismatches]


# Every (user, offer, UTC month) where cashback_monthly_totals (migration 4) and the purchases that
# count (pending or confirmed, by the UTC month of created_at) disagree; a missing side is 0.00.
_TOTALS_AGAINST_PURCHASES_SQL = """
WITH counted AS (
    SELECT user_id, offer_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month,
           sum(cashback_amount) AS earned
    FROM purchases WHERE status IN ('pending', 'confirmed') GROUP BY 1, 2, 3
)
SELECT user_id, offer_id, month, coalesce(c.earned, 0) AS counted, coalesce(t.earned, 0) AS total
FROM counted AS c FULL JOIN cashback_monthly_totals AS t USING (user_id, offer_id, month)
WHERE coalesce(c.earned, 0) <> coalesce(t.earned, 0)
"""


async def assert_totals_match_purchases(conn: asyncpg.Connection) -> None:
    mismatches = [dict(row) for row in await conn.fetch(_TOTALS_AGAINST_PURCHASES_SQL)]
    assert mismatches == [], mismatches


async def assert_counts_match_purchases(conn: asyncpg.Connection) -> None:
    """purchase_month_counts and purchase_day_counts (summed over slots) equal a recount."""
    mismatches = [mismatch.describe() for mismatch in await find_count_mismatches(conn)]
    assert mismatches == [], mismatches
    days = await conn.fetch(_DAY_COUNTS_AGAINST_PURCHASES_SQL)
    assert [dict(row) for row in days] == []


# Every (UTC day, status) where the day counts' slots do not sum to a recount of the purchases.
_DAY_COUNTS_AGAINST_PURCHASES_SQL = """
SELECT day, status, c.n AS counted, k.n AS kept
FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS n FROM purchases GROUP BY 1, 2) AS c
FULL JOIN (SELECT day, status, sum(n) AS n FROM purchase_day_counts GROUP BY 1, 2) AS k USING (day, status)
WHERE coalesce(c.n, 0) <> coalesce(k.n, 0)
"""


async def monthly_total(conn: asyncpg.Connection, user_id: str, offer_id: str, month: date | None = None) -> Decimal:
    """The running total of (user, offer, month); month defaults to this UTC month; no row is 0."""
    month = month or today().replace(day=1)
    value = await conn.fetchval(
        "SELECT earned FROM cashback_monthly_totals WHERE user_id = $1 AND offer_id = $2 AND month = $3",
        uuid.UUID(user_id),
        uuid.UUID(offer_id),
        month,
    )
    return Decimal("0.00") if value is None else value

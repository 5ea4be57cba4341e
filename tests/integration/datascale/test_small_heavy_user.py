"""The bench's heavy user at the small size is datascale's heavy user at the large size
(bench/scale_scenarios.py): as many purchases, over as long, with the same statuses. A size's ratio
then measures the table around the user, not a different user."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg

from bench import scale_scenarios
from datascale import LARGE
from server.db import parse_database_url
from tests.conftest import known_hash

SHOP = uuid.uuid4()

FACTS_SQL = """
SELECT count(*) AS purchases,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       count(*) FILTER (WHERE status = 'reversed') AS reversed,
       count(*) FILTER (WHERE status = 'confirmed') AS confirmed,
       extract(day FROM max(created_at) - min(created_at)) AS span_days,
       (SELECT count(*) FROM purchase_month_counts WHERE user_id = $1) AS month_rows,
       (SELECT available_balance FROM wallets WHERE user_id = $1) AS available,
       (SELECT count(*) FROM audit_logs WHERE action = 'PURCHASE_CONFIRMED') AS confirmations
FROM purchases WHERE user_id = $1
"""


async def _on(database_url: str, work):
    conn = await asyncpg.connect(**parse_database_url(database_url))
    try:
        return await work(conn)
    finally:
        await conn.close()


async def _a_shop_with_an_offer(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO merchants (id, name, default_cashback_percentage) VALUES ($1, 'Shop', 5)", SHOP)
    await conn.execute(
        "INSERT INTO offers (id, merchant_id, percentage, start_date, end_date, monthly_cap_per_user) "
        "VALUES ($1, $1, 5, current_date - 1, current_date + 30, 1000)",
        SHOP,
    )


def test_the_small_heavy_user_has_the_large_ones_history(database_url):
    asyncio.run(_on(database_url, _a_shop_with_an_offer))
    heavy = scale_scenarios.prepare_heavy(database_url, known_hash())
    facts = asyncio.run(_on(database_url, lambda conn: conn.fetchrow(FACTS_SQL, uuid.UUID(heavy))))

    assert facts["purchases"] == LARGE.heavy_purchases
    assert abs(facts["span_days"] - LARGE.span_days) <= 60
    # datascale's shares: 2% rejected, 3% reversed, the rest confirmed (datascale/generate.sql).
    assert 1_700 <= facts["rejected"] <= 2_300 and 2_600 <= facts["reversed"] <= 3_400
    assert facts["confirmed"] == facts["purchases"] - facts["rejected"] - facts["reversed"]
    # Three statuses in each of about 36 months, kept by the triggers as ingestion keeps them.
    assert 100 <= facts["month_rows"] <= 120
    assert facts["available"] == Decimal("0.50") * facts["confirmed"]
    assert facts["confirmations"] == facts["confirmed"] + facts["reversed"]

    # A rerun finds the history and adds nothing.
    assert scale_scenarios.prepare_heavy(database_url, known_hash()) == heavy
    again = asyncio.run(_on(database_url, lambda conn: conn.fetchrow(FACTS_SQL, uuid.UUID(heavy))))
    assert again == facts

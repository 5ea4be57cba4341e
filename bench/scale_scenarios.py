"""The scenarios issue #24 adds for data scale: the heavy user's own purchases (first page and deep),
and the admin purchase and audit lists with filters.

At the small size prepare_heavy creates the heavy user with SMALL_HISTORY purchases: the same history
as datascale's heavy user at the large size, so both of its pages hold rows as they do there, and
their confirmations' audit rows fill the audit list's page (an empty page would compare rendering
nothing with rendering a page). The same user and the same requests at both sizes: the ratio is what
a big table costs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

HEAVY_EMAIL = "heavy@example.test"

# Issue #24's targets: the heavy user's lists p99 <= 30 ms at concurrency 16; the admin lists with
# filters p99 <= 50 ms (measured at 16 too, the admin console's scale).
TARGET_P99_MS = {
    "heavy_purchases_first_page": 30.0,
    "heavy_purchases_offset_50000": 30.0,
    "admin_purchases_filtered": 50.0,
    "admin_audit_filtered": 50.0,
}
LEVEL = 16
# The small size's heavy user is the large size's (datascale, LARGE): 100,000 purchases spread evenly
# over three years, 2% rejected and 3% reversed, the rest confirmed. Half as many made each month's
# deep page skip half as far and left a third of the month-count rows, so the ratio measured the
# user's history as much as the table's size.
SMALL_HISTORY = 100_000
SMALL_HISTORY_SQL = """
WITH bought AS (
    INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, status,
                           cashback_amount, created_at, updated_at)
    SELECT 'heavy-small-' || n, $1, o.merchant_id, o.id, 10.00, 'EUR', g.status,
           CASE WHEN g.status = 'reversed' THEN 0.00 ELSE 0.50 END, g.at, g.at
    FROM generate_series(1, $2) AS n,
         LATERAL (SELECT now() - n * interval '15 minutes' AS at,
                         CASE WHEN (hashint8extended(n, 3) & 9223372036854775807) % 100 < 2 THEN 'rejected'
                              WHEN (hashint8extended(n, 3) & 9223372036854775807) % 100 < 5 THEN 'reversed'
                              ELSE 'confirmed' END AS status) AS g,
         (SELECT id, merchant_id FROM offers WHERE active ORDER BY created_at, id LIMIT 1) AS o
    RETURNING id, created_at, merchant_id, status
), audited AS (  -- each confirmation's audit row, as the job writes it (and datascale generates it)
    INSERT INTO audit_logs (occurred_at, actor_type, action, resource_type, resource_id, details)
    SELECT created_at + interval '60 seconds', 'system', 'PURCHASE_CONFIRMED', 'purchase', id,
           jsonb_build_object('merchant_id', merchant_id::text, 'amount', '10.00', 'currency', 'EUR',
                              'cashback_amount', '0.50')
    FROM bought WHERE status IN ('confirmed', 'reversed')
), credited AS (
    INSERT INTO cashback_transactions (user_id, purchase_id, amount, status, created_at, updated_at)
    SELECT $1, id, 0.50, CASE status WHEN 'confirmed' THEN 'available' ELSE 'reversed' END, created_at, created_at
    FROM bought
    RETURNING amount, status
)
UPDATE wallets SET available_balance = available_balance
    + (SELECT coalesce(sum(amount), 0) FROM credited WHERE status = 'available')
WHERE user_id = $1
"""


def prepare_heavy(database_url: str, password_hash: str) -> str:
    """The heavy user's id: datascale's at the large size, else created here with SMALL_HISTORY purchases."""
    import asyncpg

    from server.db import parse_database_url

    async def upsert() -> str:
        conn = await asyncpg.connect(**parse_database_url(database_url))
        try:
            row = await conn.fetchrow(
                "INSERT INTO users (email, hashed_password) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE "
                "SET hashed_password = EXCLUDED.hashed_password RETURNING id",
                HEAVY_EMAIL,
                password_hash,
            )
            await conn.execute("INSERT INTO wallets (user_id) VALUES ($1) ON CONFLICT DO NOTHING", row["id"])
            if not await conn.fetchval("SELECT EXISTS (SELECT FROM purchases WHERE user_id = $1)", row["id"]):
                async with conn.transaction():  # its purchases, transactions and wallet credit, or nothing
                    await conn.execute(SMALL_HISTORY_SQL, row["id"], SMALL_HISTORY)
                # As autovacuum would have before long, and the large size has. The counts too: their
                # triggers updated each of the heavy user's month rows thousands of times, and without
                # the vacuum the heavy rows run alone were about 30% slower (50,100 purchases then).
                for table in ("purchases", "audit_logs", "purchase_month_counts", "purchase_day_counts"):
                    await conn.execute(f"VACUUM ANALYZE {table}")
            return str(row["id"])
        finally:
            await conn.close()

    return asyncio.run(upsert())


def signed_tokens(database_url: str, key: str, emails: list[str], ttl_minutes: int = 240) -> dict[str, str]:
    """An access token per email, signed with the instances' key as a login would issue it. Valid for
    hours, so a long soak or both data sizes never outlive them."""
    import asyncpg

    from server.auth.tokens import issue_access
    from server.db import parse_database_url

    async def users() -> list:
        conn = await asyncpg.connect(**parse_database_url(database_url))
        try:
            return await conn.fetch("SELECT id, email, role FROM users WHERE email = ANY($1::text[])", emails)
        finally:
            await conn.close()

    found = {row["email"]: issue_access(key, str(row["id"]), row["role"], ttl_minutes) for row in asyncio.run(users())}
    missing = set(emails) - set(found)
    if missing:
        raise RuntimeError(f"no such bench users: {sorted(missing)}")
    return found


def specs(now: datetime | None = None) -> list[tuple[str, str, str]]:
    """(scenario name, path, token key) of each list request. The admin filters ask for the last
    30 days, which grow with the data as a real console's default view does."""
    now = now or datetime.now(UTC)
    month_ago = now - timedelta(days=30)
    start, end = month_ago.date().isoformat(), now.date().isoformat()
    since = month_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        ("heavy_purchases_first_page", "/api/v1/users/me/purchases?limit=10", "heavy"),
        ("heavy_purchases_offset_50000", "/api/v1/users/me/purchases?limit=10&offset=50000", "heavy"),
        (
            "admin_purchases_filtered",
            f"/api/v1/purchases?status=confirmed&start_date={start}&end_date={end}&limit=10",
            "admin",
        ),
        ("admin_audit_filtered", f"/api/v1/audit-logs?action=PURCHASE_CONFIRMED&from={since}&limit=20", "admin"),
        ("admin_purchases_unfiltered", "/api/v1/purchases?limit=10", "admin"),
    ]

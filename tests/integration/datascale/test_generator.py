"""datascale's generator SQL at a tiny scale against the real test PostgreSQL: the counts it
promises, the schema's references and checks, the wallet invariants of API.md §4.5, the monthly cap
totals, and the indexes the migrations made, all there after the bulk load."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import datascale
from server.wallets.consistency import find_mismatches
from tests.integration.purchases.helpers import assert_counts_match_purchases

TINY = datascale.Scale(users=40, purchases=1_000, heavy_purchases=100, merchants=5, pending_tail=10)
ANCHOR = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

# (referencing table, column, referenced table): every foreign key the generated rows carry.
REFERENCES = [
    ("purchases", "user_id", "users"),
    ("purchases", "merchant_id", "merchants"),
    ("purchases", "offer_id", "offers"),
    ("cashback_transactions", "user_id", "users"),
    ("cashback_transactions", "purchase_id", "purchases"),
    ("payouts", "user_id", "users"),
    ("payouts", "processed_by", "users"),
    ("offers", "merchant_id", "merchants"),
    ("wallets", "user_id", "users"),
    ("cashback_monthly_totals", "user_id", "users"),
    ("cashback_monthly_totals", "offer_id", "offers"),
    ("purchase_month_counts", "user_id", "users"),
]


def _normalised(row) -> tuple[str, str]:
    return row["indexname"], re.sub(r"::[a-z ]+(\[\])?|[()\[\]]|ARRAY", "", row["indexdef"])


async def test_tiny_scale_is_complete_and_consistent(conn):
    indexes_before = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes ORDER BY 1")
    lines: list[str] = []

    timings = await datascale.generate(conn, TINY, ANCHOR, progress=lines.append)

    assert set(timings) >= {"purchases", "cashback transactions", "wallets"}
    assert any(line.startswith("  purchases: ") for line in lines)
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM users WHERE role = 'user') AS users,"
        " (SELECT count(*) FROM purchases) AS purchases,"
        " (SELECT count(*) FROM cashback_transactions) AS transactions,"
        " (SELECT count(*) FROM wallets) AS wallets,"
        " (SELECT count(*) FROM offers WHERE active) AS offers,"
        " (SELECT count(*) FROM purchases WHERE status = 'pending') AS pending,"
        " (SELECT max(n) FROM (SELECT count(*) AS n FROM purchases GROUP BY user_id) AS per_user) AS most"
    )
    assert dict(counts) == {
        "users": 40,
        "purchases": 1_000,
        "transactions": 1_000,
        "wallets": 41,
        "offers": 5,
        "pending": 10,
        "most": 100,
    }
    heavy = await conn.fetchval(
        "SELECT count(*) FROM purchases p JOIN users u ON u.id = p.user_id WHERE u.email = $1",
        datascale.heavy_user_email(),
    )
    assert heavy == 100
    assert await conn.fetchval("SELECT count(*) FROM users WHERE email LIKE 'bench%@example.test'") == 32

    # Every state of API.md §4.4 is there, with its transaction's state and amount (§4.5).
    states = {
        (row["purchase"], row["tx"]): row["n"]
        for row in await conn.fetch(
            "SELECT p.status AS purchase, t.status AS tx, count(*) AS n FROM purchases p "
            "JOIN cashback_transactions t ON t.purchase_id = p.id GROUP BY 1, 2"
        )
    }
    assert set(states) == {
        ("pending", "pending"),
        ("confirmed", "available"),
        ("rejected", "reversed"),
        ("reversed", "reversed"),
    }
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM purchases p JOIN cashback_transactions t ON t.purchase_id = p.id "
            "WHERE p.cashback_amount <> CASE WHEN p.status = 'reversed' THEN 0 ELSE t.amount END"
        )
        == 0
    )

    for table, column, target in REFERENCES:
        dangling = await conn.fetchval(
            f"SELECT count(*) FROM {table} s WHERE s.{column} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.{'user_id' if target == 'wallets' else 'id'} = s.{column})"
        )
        assert dangling == 0, f"{table}.{column}"

    assert await find_mismatches(conn) == []
    assert await conn.fetchval("SELECT count(*) FROM payouts WHERE status = 'requested'") > 0
    assert await conn.fetchval("SELECT count(*) FROM payouts WHERE status = 'completed'") > 0

    # The cap totals are exactly what the trigger would have counted, and within every cap.
    drift = await conn.fetchval(
        "SELECT count(*) FROM (SELECT user_id, offer_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month,"
        " sum(cashback_amount) AS earned FROM purchases WHERE status IN ('pending', 'confirmed') AND cashback_amount <> 0"
        " GROUP BY 1, 2, 3) AS counted FULL JOIN cashback_monthly_totals t USING (user_id, offer_id, month)"
        " WHERE counted.earned IS DISTINCT FROM t.earned"
    )
    assert drift == 0
    await assert_counts_match_purchases(conn)  # the lists' counts too
    audit_drift = await conn.fetchval(
        "SELECT count(*) FROM (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, action, count(*) AS n"
        " FROM audit_logs GROUP BY 1, 2) AS counted FULL JOIN (SELECT day, action, sum(n) AS n FROM audit_day_counts"
        " GROUP BY 1, 2) AS kept USING (day, action) WHERE counted.n IS DISTINCT FROM kept.n"
    )
    assert audit_drift == 0
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM cashback_monthly_totals t JOIN offers o ON o.id = t.offer_id WHERE t.earned > o.monthly_cap_per_user"
        )
        == 0
    )

    # One audit row per business change (API.md §4.9).
    audited = await conn.fetchval(
        "SELECT (SELECT count(*) FROM audit_logs) = "
        "(SELECT count(*) FILTER (WHERE status IN ('confirmed', 'rejected')) + 2 * count(*) FILTER (WHERE status = 'reversed') FROM purchases)"
        " + (SELECT count(*) + count(*) FILTER (WHERE status <> 'requested') FROM payouts) + 2 * 5"
    )
    assert audited

    # The bulk load dropped and recreated the secondary indexes: the same set, the same definitions
    # (PostgreSQL prints a re-parsed predicate with other casts and brackets, hence the normalising).
    indexes_after = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes ORDER BY 1")
    assert [_normalised(row) for row in indexes_after] == [_normalised(row) for row in indexes_before]
    assert await conn.fetchval("SELECT current_setting('session_replication_role')") == "origin"


async def test_generated_purchases_answer_through_the_api(client, conn):
    """The service reads the generated rows as its own: the heavy user's page and exact total."""
    await datascale.generate(conn, TINY, ANCHOR, progress=lambda line: None)
    from tests.conftest import known_hash

    await conn.execute("UPDATE users SET hashed_password = $1 WHERE email = $2", known_hash(), "heavy@example.test")
    login = await client.post("/api/v1/auth/login", json={"email": "heavy@example.test", "password": "Str0ng!Pass"})
    token = login.json()["access_token"]
    response = await client.get(
        "/api/v1/users/me/purchases?limit=5&offset=50", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["pagination"] == {"offset": 50, "limit": 5, "total": 100}
    assert len(body["data"]) == 5
    wallet = await client.get("/api/v1/users/me/wallet", headers={"Authorization": f"Bearer {token}"})
    assert wallet.status_code == 200

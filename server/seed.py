"""The demo seed of API.md §6, loaded with plain SQL in one transaction.

`load_demo_seed(url)` loads it when the database has none of it yet (for `invoke serve`);
`reset=True` first empties every business table (the audit log is append-only and stays) and
loads it again, which is what `invoke seed --reset` does. Wallet balances are computed from the
seeded cashback transactions, so they satisfy the invariants of §4.5 by construction.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from server.db import parse_database_url

# Every seeded user's password is Str0ng!Pass, stored as bcrypt (upgraded to argon2id on first login).
SEED_PASSWORD_HASH = "$2b$12$XA7sNuNkVQdhGdbW0bHv.OeNnC4RfBSx74dc6sxIA2ETLtIUtKLxO"

ALICE = "b7e2c1a2-4f3a-4e2b-9c1a-8d2e3f4b5c6d"
BOB = "c8d3e2b1-5a4b-4c3d-8b2a-7e6f5d4c3b2a"
CAROL = "d9f4b3c2-6b5c-5d4e-7c3b-6a5e4d3c2b1a"
JERO = "d9f4b3c2-6b5c-5d4e-7c3b-6a5e4d3c2b1b"
DAVE = "e0e1e2e3-f4a5-4b6c-7d8e-9f0a1b2c3d4e"

USERS = [
    (ALICE, "alice@clicknback.com", "user"),
    (BOB, "bob@clicknback.com", "user"),
    (CAROL, "carol@clicknback.com", "admin"),
    (JERO, "jero@clicknback.com", "admin"),
    (DAVE, "dave@clicknback.com", "user"),
]

SHOPLY = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
QUICKCART = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"
URBANMART = "c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f"
TECHZONE = "f6a7b8c9-d0e1-4f2a-3b4c-5d6e7f8a9b0c"
LUXWATCHES = "a5b6c7d8-e9f0-4a1b-2c3d-4e5f6a7b8c9d"
VINTAGEVAULT = "b6c7d8e9-f0a1-4b2c-3d4e-5f6a7b8c9d0e"
BANKSIMFAIL = "f0000000-0000-0000-0000-000000000001"


def _offer_id(number: int) -> str:
    return f"c3d4e5f6-a7b8-4c9d-1111-{number:012d}"


STD = (-30, 300)  # the standard window, in days relative to D

# (merchant id, name, default %, merchant active, offer id, percent, fixed, window, cap, offer active);
# a merchant without an offer has None in the offer's columns, so the rows are typed loosely.
MERCHANTS: list[tuple[Any, ...]] = [
    (SHOPLY, "Shoply", "5.0", True, "f0e1d2c3-b4a5-4678-9012-3456789abcde", "5", None, STD, "50", True),
    (QUICKCART, "QuickCart", "3.5", True, "a1b2c3d4-e5f6-4789-0abc-def012345678", "0", "3.00", (-30, 270), "20", True),
    (URBANMART, "UrbanMart", "2.0", True, _offer_id(1), "2", None, (-10, 300), "15", True),
    ("d4e5f6a7-b8c9-4d0e-1f2a-3b4c5d6e7f8a", "MegaGoods", "4.0", True, _offer_id(2), "4", None, STD, "40", True),
    ("e5f6a7b8-c9d0-4e1f-2a3b-4c5d6e7f8a9b", "ElectroHub", "2.5", True, _offer_id(3), "2.5", None, STD, "25", True),
    (TECHZONE, "TechZone", "6.0", True, _offer_id(4), "6", None, STD, "60", True),
    ("a7b8c9d0-e1f2-4a3b-4c5d-6e7f8a9b0c1d", "FreshMarket", "1.5", True, _offer_id(5), "1.5", None, STD, "10", True),
    ("b8c9d0e1-f2a3-4b4c-5d6e-7f8a9b0c1d2e", "StyleHub", "8.0", True, _offer_id(6), "8", None, STD, "80", True),
    ("c9d0e1f2-a3b4-4c5d-6e7f-8a9b0c1d2e3f", "HomePlus", "3.0", True, _offer_id(7), "3", None, STD, "30", True),
    ("d0e1f2a3-b4c5-4d6e-7f8a-9b0c1d2e3f4a", "SportsPro", "5.5", True, _offer_id(8), "5.5", None, STD, "55", True),
    ("e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b", "BeautyWell", "7.0", True, _offer_id(9), "7", None, STD, "70", True),
    ("f2a3b4c5-d6e7-4f8a-9b0c-1d2e3f4a5b6c", "GadgetWorld", "4.5", True, _offer_id(10), "4.5", None, STD, "45", True),
    ("a3b4c5d6-e7f8-4a9b-0c1d-2e3f4a5b6c7d", "FoodiesFresh", "2.0", True, _offer_id(11), "2", None, STD, "20", True),
    ("b4c5d6e7-f8a9-4b0c-1d2e-3f4a5b6c7d8e", "TravelGear", "6.5", True, _offer_id(12), "6.5", None, STD, "65", True),
    ("c5d6e7f8-a9b0-4c1d-2e3f-4a5b6c7d8e9f", "PetParadise", "3.5", True, _offer_id(13), "3.5", None, STD, "35", True),
    ("d6e7f8a9-b0c1-4d2e-3f4a-5b6c7d8e9f0a", "BookHaven", "1.0", True, _offer_id(14), "1", None, STD, "10", True),
    ("e7f8a9b0-c1d2-4e3f-4a5b-6c7d8e9f0a1b", "FitnessPeak", "9.0", True, _offer_id(15), "9", None, STD, "90", True),
    ("f8a9b0c1-d2e3-4f4a-5b6c-7d8e9f0a1b2c", "GreenGrocer", "2.5", True, _offer_id(16), "2.5", None, STD, "25", True),
    ("a9b0c1d2-e3f4-4a5b-6c7d-8e9f0a1b2c3d", "ToyLand", "4.0", True, _offer_id(17), "4", None, STD, "40", True),
    ("b0c1d2e3-f4a5-4b6c-7d8e-9f0a1b2c3d4e", "JewelryBox", "10.0", True, _offer_id(18), "10", None, STD, "100", True),
    (
        "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
        "AutoParts Plus",
        "1.5",
        True,
        _offer_id(21),
        "1.5",
        None,
        (-60, -5),
        "15",
        True,
    ),
    (
        "d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f6a",
        "KidsCloset",
        "5.0",
        True,
        _offer_id(22),
        "5",
        None,
        (365, 640),
        "50",
        True,
    ),
    (
        "e3f4a5b6-c7d8-4e9f-0a1b-2c3d4e5f6a7b",
        "ChefSupplies",
        "3.0",
        True,
        "c1d2e3f4-0000-0000-0002-000000000002",
        "2",
        None,
        STD,
        "20",
        False,
    ),
    (
        "f4a5b6c7-d8e9-4f0a-1b2c-3d4e5f6a7b8c",
        "OutdoorEscape",
        "7.5",
        True,
        "c1d2e3f4-0000-0000-0001-000000000001",
        "3",
        None,
        STD,
        "30",
        True,
    ),
    (LUXWATCHES, "LuxWatches", "15.0", False, "d0000001-0000-0000-0000-000000000001", "5", None, STD, "50", True),
    (VINTAGEVAULT, "VintageVault", "12.0", False, _offer_id(20), "12", None, (-400, -35), "120", False),
    ("c7d8e9f0-a1b2-4c3d-4e5f-6a7b8c9d0e1f", "NightOwl Electronics", "8.5", False, None, None, None, None, None, None),
    (
        BANKSIMFAIL,
        "BankSimFail",
        "0.0",
        True,
        "f0000000-0000-0000-0001-000000000001",
        "5",
        None,
        (-30, 3650),
        "100",
        True,
    ),
]

# Two older, inactive offers: (offer id, merchant id, percent, window, cap)
OLD_OFFERS = [
    ("b2c3d4e5-f6a7-4890-abcd-ef1234567890", URBANMART, "2", (-400, -35), "15"),
    (_offer_id(19), LUXWATCHES, "15", (-400, -35), "150"),
]

OFFER_OF = {row[0]: row[4] for row in MERCHANTS}


def _purchase_id(number: int) -> str:
    special = {
        12: "bb000001-0000-0000-0000-000000000001",
        13: "bb000001-0000-0000-0000-000000000002",
        14: "cc000001-0000-0000-0000-000000000001",
        15: "cc000001-0000-0000-0000-000000000002",
    }
    return special.get(number, f"aa000001-0000-0000-0000-{number:012d}")


def _external_id(number: int) -> str:
    if number in (12, 13):
        return f"txn_seed_reject_{number - 11:03d}"
    if number in (14, 15):
        return f"txn_seed_manual_{number - 13:03d}"
    return f"txn_seed_{number:03d}"


DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
# (NN, user, merchant, amount, status, cashback_amount, tx amount, tx status, created ago)
PURCHASES = [
    (1, ALICE, SHOPLY, "100.00", "pending", "5.00", "5.00", "pending", 5 * DAY),
    (2, ALICE, SHOPLY, "50.00", "pending", "2.50", "2.50", "pending", 4 * DAY),
    (3, BOB, QUICKCART, "75.00", "pending", "3.00", "3.00", "pending", 3 * DAY),
    (4, CAROL, TECHZONE, "200.00", "pending", "12.00", "12.00", "pending", 2 * DAY),
    (5, ALICE, SHOPLY, "300.00", "confirmed", "15.00", "15.00", "available", 10 * DAY),
    (6, BOB, QUICKCART, "40.00", "reversed", "0.00", "3.00", "reversed", 8 * DAY),
    (7, ALICE, QUICKCART, "80.00", "pending", "3.00", "3.00", "pending", 1 * DAY),
    (8, BOB, SHOPLY, "120.00", "confirmed", "6.00", "6.00", "available", 11 * DAY),
    (9, ALICE, TECHZONE, "60.00", "pending", "3.60", "3.60", "pending", 6 * DAY),
    (10, CAROL, QUICKCART, "250.00", "reversed", "0.00", "3.00", "reversed", 9 * DAY),
    (11, BOB, TECHZONE, "90.00", "pending", "5.40", "5.40", "pending", 7 * DAY),
    (12, ALICE, BANKSIMFAIL, "99.00", "pending", "4.95", "4.95", "pending", 1 * HOUR),
    (13, BOB, BANKSIMFAIL, "49.50", "pending", "2.48", "2.48", "pending", 2 * HOUR),
    (14, DAVE, SHOPLY, "150.00", "pending", "7.50", "7.50", "pending", 2 * DAY),
    (15, DAVE, QUICKCART, "85.00", "pending", "3.00", "3.00", "pending", 1 * DAY),
]

# (id, scope type, scope id, enabled, description)
FLAGS = [
    ("ff000001-0000-0000-0000-000000000001", "global", None, True, "on by default"),
    ("ff000001-0000-0000-0000-000000000003", "user", DAVE, False, "manual-confirmation demo"),
    (
        "ff000001-0000-0000-0000-000000000002",
        "merchant",
        BANKSIMFAIL,
        True,
        "scoped-row demo; the rejection simulation still runs",
    ),
]

BUSINESS_TABLES = [
    "login_attempts",
    "refresh_tokens",
    "feature_flags",
    "payouts",
    "cashback_transactions",
    "purchases",
    "wallets",
    "offers",
    "merchants",
    "users",
]


async def _insert(conn: asyncpg.Connection, today: date, now: datetime) -> None:
    await conn.executemany(
        "INSERT INTO users (id, email, hashed_password, role, active) VALUES ($1, $2, $3, $4, true)",
        [(uid, email, SEED_PASSWORD_HASH, role) for uid, email, role in USERS],
    )
    await conn.executemany(
        "INSERT INTO merchants (id, name, default_cashback_percentage, active) VALUES ($1, $2, $3, $4)",
        [(m[0], m[1], Decimal(m[2]), m[3]) for m in MERCHANTS],
    )
    offers = [
        (
            m[4],
            m[0],
            Decimal(m[5]),
            Decimal(m[6]) if m[6] else None,
            today + timedelta(days=m[7][0]),
            today + timedelta(days=m[7][1]),
            Decimal(m[8]),
            m[9],
        )
        for m in MERCHANTS
        if m[4] is not None
    ] + [
        (oid, mid, Decimal(pct), None, today + timedelta(days=w[0]), today + timedelta(days=w[1]), Decimal(cap), False)
        for oid, mid, pct, w, cap in OLD_OFFERS
    ]
    await conn.executemany(
        "INSERT INTO offers (id, merchant_id, percentage, fixed_amount, start_date, end_date, "
        "monthly_cap_per_user, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        offers,
    )
    purchases, transactions = [], []
    for number, uid, mid, amount, status, cashback, tx_amount, tx_status, ago in PURCHASES:
        created = now - ago
        purchases.append(
            (
                _purchase_id(number),
                _external_id(number),
                uid,
                mid,
                OFFER_OF[mid],
                Decimal(amount),
                status,
                Decimal(cashback),
                created,
            )
        )
        transactions.append(
            (
                f"cb000001-0000-0000-0000-{number:012d}",
                uid,
                _purchase_id(number),
                Decimal(tx_amount),
                tx_status,
                created,
            )
        )
    await conn.executemany(
        "INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, status, "
        "cashback_amount, next_verification_at, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, 'EUR', $7, $8, $9, $9, $9)",
        purchases,
    )
    await conn.executemany(
        "INSERT INTO cashback_transactions (id, user_id, purchase_id, amount, status, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $6)",
        transactions,
    )
    await conn.execute(
        """
        INSERT INTO wallets (user_id, pending_balance, available_balance, paid_balance)
        SELECT u.id,
               coalesce(sum(t.amount) FILTER (WHERE t.status = 'pending'), 0),
               coalesce(sum(t.amount) FILTER (WHERE t.status = 'available'), 0),
               0
        FROM users u LEFT JOIN cashback_transactions t ON t.user_id = u.id
        WHERE u.id = ANY($1::uuid[])
        GROUP BY u.id
        """,
        [uid for uid, _, _ in USERS],
    )
    await conn.executemany(
        "INSERT INTO feature_flags (id, key, enabled, scope_type, scope_id, description) "
        "VALUES ($1, 'purchase_auto_confirm', $4, $2, $3, $5)",
        FLAGS,
    )


async def is_seeded(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", ALICE))


async def load_demo_seed(database_url: str, reset: bool = False) -> bool:
    """Load the seed; returns False when it was already there and reset was not asked for."""
    connection = await asyncpg.connect(**parse_database_url(database_url))
    try:
        async with connection.transaction():
            if reset:
                await connection.execute(f"TRUNCATE {', '.join(BUSINESS_TABLES)} CASCADE")
            elif await is_seeded(connection):
                return False
            now = datetime.now(UTC)
            await _insert(connection, now.date(), now)
        return True
    finally:
        await connection.close()


def load_demo_seed_sync(database_url: str, reset: bool = False) -> bool:
    return asyncio.run(load_demo_seed(database_url, reset))

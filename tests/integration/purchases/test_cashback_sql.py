"""The cashback calculation and the monthly cap of API.md §4.1, run by the SQL functions that
ingestion uses (migration 3: cashback_round_cents, cashback_raw, cashback_credited), against the
real test database. These are the only implementation; Decimal's ROUND_HALF_EVEN is the oracle."""

from decimal import ROUND_HALF_EVEN, Decimal

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import db_migrations
from server.db import parse_database_url

D = Decimal
money = st.decimals(min_value=D("0.01"), max_value=D("1000000.00"), places=2)
percent = st.decimals(min_value=D("0.01"), max_value=D("100.00"), places=2)
non_negative = st.decimals(min_value=D("0.00"), max_value=D("100000.00"), places=2)
# The same connection serves every example: the functions are pure, nothing is written.
examples = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def half_even(value: Decimal) -> Decimal:
    return value.quantize(D("0.01"), rounding=ROUND_HALF_EVEN)


async def to_cents(conn, value) -> Decimal:
    return await conn.fetchval("SELECT cashback_round_cents($1)", D(value))


async def raw_cashback(conn, amount, percentage, fixed_amount=None) -> Decimal:
    return await conn.fetchval(
        "SELECT cashback_raw($1, $2, $3)", D(amount), D(percentage), None if fixed_amount is None else D(fixed_amount)
    )


async def credited_cashback(conn, raw, monthly_cap, earned) -> Decimal:
    return await conn.fetchval("SELECT cashback_credited($1, $2, $3)", D(raw), D(monthly_cap), D(earned))


@pytest.mark.parametrize(
    "amount, percentage, expected",
    [
        ("75.00", "5", "3.75"),
        ("49.50", "5", "2.48"),  # 2.475 rounds half to even: 2.48
        ("33.33", "10", "3.33"),
        ("49.30", "5", "2.46"),  # 2.465 -> 2.46
        ("300.00", "5", "15.00"),
        ("200.00", "6", "12.00"),
    ],
)
async def test_worked_percentage_examples(conn, amount, percentage, expected):
    raw = await raw_cashback(conn, amount, percentage)
    assert raw == D(expected) and str(raw) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2.475", "2.48"),
        ("2.465", "2.46"),  # API.md §1.6
        ("0.005", "0.00"),
        ("0.015", "0.02"),
        ("0.025", "0.02"),
        ("2.4750001", "2.48"),
        ("2.4649999", "2.46"),
        ("2.4650001", "2.47"),
        ("-2.475", "-2.48"),
        ("-2.465", "-2.46"),
        ("3", "3.00"),
        ("0", "0.00"),
        ("99999999999999999.995", "100000000000000000.00"),
    ],
)
async def test_half_even_rounding_examples(conn, value, expected):
    rounded = await to_cents(conn, value)
    assert rounded == D(expected) and str(rounded) == expected  # always two decimals


async def test_fixed_amount_wins_and_is_not_limited_by_the_purchase(conn):
    assert await raw_cashback(conn, "1.00", "5", "3.00") == D("3.00")
    assert await raw_cashback(conn, "85.00", "0", "3.00") == D("3.00")


@pytest.mark.parametrize(
    "raw, cap, earned, expected",
    [
        ("5.00", "6.00", "3.00", "3.00"),  # cap 6 with 3 earned: 3 credited
        ("5.00", "50.00", "50.00", "0.00"),  # cap reached: 0.00, still recorded
        ("45.00", "50.00", "0.00", "45.00"),
        ("10.00", "50.00", "45.00", "5.00"),
        ("5.00", "10.00", "12.00", "0.00"),  # never negative, even past the cap
    ],
)
async def test_worked_cap_examples(conn, raw, cap, earned, expected):
    credited = await credited_cashback(conn, raw, cap, earned)
    assert credited == D(expected) and str(credited) == expected


async def test_the_w3_monthly_cap_sequence(conn):
    earned = D("0")
    credited = []
    for amount in ("900.00", "200.00", "100.00"):
        value = await credited_cashback(conn, await raw_cashback(conn, amount, "5"), "50", earned)
        credited.append(str(value))
        earned += value
    assert credited == ["45.00", "5.00", "0.00"]


async def test_the_largest_amounts_are_computed_exactly(conn):
    # NUMERIC(19,2) at its limit, times the largest percentage with cents: no digit lost on the way.
    amount, percentage = D("99999999999999999.99"), D("99.99")
    assert await raw_cashback(conn, amount, percentage) == half_even(amount * percentage / 100)


@examples
@given(amount=money, percentage=percent)
async def test_percentage_cashback_is_the_exact_product_rounded_half_even(conn, amount, percentage):
    raw = await raw_cashback(conn, amount, percentage)
    exact = amount * percentage / 100
    assert raw == half_even(exact)
    assert raw == raw.quantize(D("0.01"))
    assert abs(raw - exact) <= D("0.005")
    assert D("0") <= raw <= amount


@examples
@given(amount=money, percentage=percent, fixed=money)
async def test_a_fixed_amount_always_wins(conn, amount, percentage, fixed):
    assert await raw_cashback(conn, amount, percentage, fixed) == fixed


@examples
@given(raw=non_negative, cap=money, earned=non_negative)
async def test_credit_is_within_zero_raw_and_the_room_left_under_the_cap(conn, raw, cap, earned):
    credited = await credited_cashback(conn, raw, cap, earned)
    assert credited == credited.quantize(D("0.01"))
    assert D("0") <= credited <= raw
    assert credited <= max(D("0"), cap - earned)
    # Either the full raw amount fits, or the cap is exactly reached (or was already).
    assert credited == raw or earned + credited >= cap


@examples
@given(cap=money, amounts=st.lists(money, min_size=1, max_size=30), percentage=percent)
async def test_a_sequence_of_purchases_never_earns_more_than_the_cap(conn, cap, amounts, percentage):
    earned = D("0")
    for amount in amounts:
        credited = await credited_cashback(conn, await raw_cashback(conn, amount, percentage), cap, earned)
        assert credited >= 0
        earned += credited
    assert earned <= cap


INGESTION_FUNCTIONS = {"cashback_round_cents", "cashback_raw", "cashback_credited", "record_purchase"}
MIGRATION = "3_20261127000300_ingest_in_one_statement.py"


async def test_downgrade_drops_the_functions_and_upgrade_restores_them(databases):
    name = databases.create_empty("cashback")
    url = databases.url(name)

    async def functions() -> set[str]:
        connection = await asyncpg.connect(**parse_database_url(url))
        try:
            rows = await connection.fetch(
                "SELECT proname FROM pg_proc WHERE proname = ANY($1::text[])", list(INGESTION_FUNCTIONS)
            )
            return {row["proname"] for row in rows}
        finally:
            await connection.close()

    try:
        await db_migrations.upgrade(url)
        assert await functions() == INGESTION_FUNCTIONS
        undone = await db_migrations.downgrade_to(url, db_migrations.migration_number(MIGRATION) - 1)
        assert undone[-1] == MIGRATION  # newest first: this one is undone last
        assert await functions() == set()
        assert MIGRATION in await db_migrations.upgrade(url)
        assert await functions() == INGESTION_FUNCTIONS
    finally:
        databases.drop(name)

"""The cashback calculation and the monthly cap of API.md §4.1."""

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from server.purchases.cashback import credited_cashback, raw_cashback, to_cents

D = Decimal
money = st.decimals(min_value=D("0.01"), max_value=D("1000000.00"), places=2)
percent = st.decimals(min_value=D("0.01"), max_value=D("100.00"), places=2)
non_negative = st.decimals(min_value=D("0.00"), max_value=D("100000.00"), places=2)


@pytest.mark.parametrize("amount, percentage, expected", [
    ("75.00", "5", "3.75"),
    ("49.50", "5", "2.48"),  # 2.475 rounds half to even: 2.48
    ("33.33", "10", "3.33"),
    ("49.30", "5", "2.46"),  # 2.465 -> 2.46
    ("300.00", "5", "15.00"),
    ("200.00", "6", "12.00"),
])
def test_worked_percentage_examples(amount, percentage, expected):
    assert raw_cashback(D(amount), D(percentage), None) == D(expected)


def test_half_even_rounding_examples():
    assert to_cents(D("2.475")) == D("2.48")
    assert to_cents(D("2.465")) == D("2.46")


def test_fixed_amount_wins_and_is_not_limited_by_the_purchase():
    assert raw_cashback(D("1.00"), D("5"), D("3.00")) == D("3.00")
    assert raw_cashback(D("85.00"), D("0"), D("3.00")) == D("3.00")


@pytest.mark.parametrize("raw, cap, earned, expected", [
    ("5.00", "6.00", "3.00", "3.00"),   # cap 6 with 3 earned: 3 credited
    ("5.00", "50.00", "50.00", "0.00"),  # cap reached: 0.00, still recorded
    ("45.00", "50.00", "0.00", "45.00"),
    ("10.00", "50.00", "45.00", "5.00"),
    ("5.00", "50.00", "50.00", "0.00"),
    ("5.00", "10.00", "12.00", "0.00"),  # never negative, even past the cap
])
def test_worked_cap_examples(raw, cap, earned, expected):
    assert credited_cashback(D(raw), D(cap), D(earned)) == D(expected)


def test_the_w3_monthly_cap_sequence():
    earned = D("0")
    credited = []
    for amount in ("900.00", "200.00", "100.00"):
        value = credited_cashback(raw_cashback(D(amount), D("5"), None), D("50"), earned)
        credited.append(str(value))
        earned += value
    assert credited == ["45.00", "5.00", "0.00"]


@given(amount=money, percentage=percent)
def test_percentage_cashback_is_the_exact_product_rounded_to_the_cent(amount, percentage):
    raw = raw_cashback(amount, percentage, None)
    exact = amount * percentage / 100
    assert raw == raw.quantize(D("0.01"))
    assert abs(raw - exact) <= D("0.005")
    assert D("0") <= raw <= amount


@given(amount=money, percentage=percent, fixed=money)
def test_a_fixed_amount_always_wins(amount, percentage, fixed):
    assert raw_cashback(amount, percentage, fixed) == fixed


@given(raw=non_negative, cap=money, earned=non_negative)
def test_credit_is_within_zero_raw_and_the_room_left_under_the_cap(raw, cap, earned):
    credited = credited_cashback(raw, cap, earned)
    assert credited == credited.quantize(D("0.01"))
    assert D("0") <= credited <= raw
    assert credited <= max(D("0"), cap - earned)
    # Either the full raw amount fits, or the cap is exactly reached (or was already).
    assert credited == raw or earned + credited >= cap


@given(cap=money, amounts=st.lists(money, min_size=1, max_size=30), percentage=percent)
def test_a_sequence_of_purchases_never_earns_more_than_the_cap(cap, amounts, percentage):
    earned = D("0")
    for amount in amounts:
        credited = credited_cashback(raw_cashback(amount, percentage, None), cap, earned)
        assert credited >= 0
        earned += credited
    assert earned <= cap

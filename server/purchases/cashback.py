"""The cashback calculation of API.md §4.1, as pure functions of Decimals (no I/O, no floats).

Ingestion calls `credited_cashback` while it holds the caller's wallet lock, with `earned` read
after taking that lock, so concurrent recordings of one user cannot together pass the cap.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_cents(value: Decimal) -> Decimal:
    """Round to the cent, half to even (2.475 -> 2.48, 2.465 -> 2.46)."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def raw_cashback(amount: Decimal, percentage: Decimal, fixed_amount: Decimal | None) -> Decimal:
    """A fixed amount wins (even over a percentage, and it is not limited by the purchase
    amount); otherwise amount x percentage / 100, rounded half-even to the cent."""
    if fixed_amount is not None:
        return to_cents(Decimal(fixed_amount))
    return to_cents(Decimal(amount) * Decimal(percentage) / Decimal(100))


def credited_cashback(raw: Decimal, monthly_cap: Decimal, earned: Decimal) -> Decimal:
    """max(0.00, min(raw, cap - earned)): what is credited once this month's earnings count."""
    return to_cents(max(ZERO, min(Decimal(raw), Decimal(monthly_cap) - Decimal(earned))))

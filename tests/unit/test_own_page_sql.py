"""The user's page statements number their parameters in the order own_page passes them
(server/purchases/own_page.py): user, skip (past the first page), then the status, then the end of
the month. The page size is written into the statement (ADR 0048)."""

from __future__ import annotations

from datetime import date

import pytest

from server.purchases import counts, own_page


@pytest.mark.parametrize(
    ("by_status", "before_month", "wanted"),
    [
        (False, False, ["user_id = $1"]),
        (True, False, ["user_id = $1 AND status = $3", "c.status = $3"]),
        (False, True, ["user_id = $1 AND created_at < $3"]),
        (True, True, ["user_id = $1 AND status = $3 AND created_at < $4", "c.status = $3"]),
    ],
)
def test_page_parameters_follow_the_call_order(by_status, before_month, wanted):
    sql = own_page.page_sql(by_status, before_month, True, 10)
    for part in wanted:
        assert part in sql, (part, sql)
    assert "OFFSET $2 LIMIT 10)" in sql
    assert sql.count("$") == 2 + 2 * by_status + before_month + 1  # the total's user and status again


def test_a_first_page_has_no_offset_and_numbers_its_status_second():
    sql = own_page.page_sql(True, False, False, 25)
    assert "OFFSET" not in sql and "LIMIT 25)" in sql
    assert "user_id = $1 AND status = $2" in sql and "c.status = $2" in sql


def test_a_deep_page_leaves_the_total_to_the_months_that_placed_it():
    sql = own_page.page_sql(True, True, True, 10, with_total=False)
    assert "purchase_month_counts" not in sql and "total" not in sql
    assert "user_id = $1 AND status = $3 AND created_at < $4" in sql and sql.count("$") == 4


@pytest.mark.parametrize("size", [0, -1, 1001])
def test_a_page_size_outside_the_written_range_is_refused(size):
    with pytest.raises(ValueError):
        own_page.page_sql(False, False, False, size)


def test_a_deep_offset_is_located_in_its_month_from_the_counts_newest_first():
    months = [
        {"month": date(2026, 12, 1), "rows": 0},
        {"month": date(2026, 11, 1), "rows": 5},
        {"month": date(2026, 10, 1), "rows": 7},
    ]
    # Newest months with no rows set no bound: the page reads from the newest purchase.
    assert counts.locate(months, 0) == (counts.Window(until=None, skip=0), 12)
    assert counts.locate(months, 6) == (counts.Window(until=counts.month_end(date(2026, 10, 1)), skip=1), 12)
    assert counts.locate(months, 12) == (None, 12)
    assert counts.locate(months[1:], 3) == (counts.Window(until=None, skip=3), 12)

"""The user's page statements number their parameters in the order own_page passes them
(server/purchases/own_page.py): user, skip, limit, then the status, then the end of the month."""

from __future__ import annotations

from datetime import date

import pytest

from server.purchases import counts, own_page


@pytest.mark.parametrize(
    ("by_status", "before_month", "wanted"),
    [
        (False, False, ["user_id = $1"]),
        (True, False, ["user_id = $1 AND status = $4", "c.status = $4"]),
        (False, True, ["user_id = $1 AND created_at < $4"]),
        (True, True, ["user_id = $1 AND status = $4 AND created_at < $5", "c.status = $4"]),
    ],
)
def test_page_parameters_follow_the_call_order(by_status, before_month, wanted):
    sql = own_page.page_sql(by_status, before_month)
    for part in wanted:
        assert part in sql, (part, sql)
    assert "OFFSET $2 LIMIT $3" in sql
    assert sql.count("$") == 3 + 2 * by_status + before_month + 1  # the total's user and status again


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

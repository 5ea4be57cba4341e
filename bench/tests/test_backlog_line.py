"""The backlog's line says how much due work was ahead of the backlog (bench/backlog.py)."""

from __future__ import annotations

from bench import backlog

ROW = {"backlog": 100_000, "insert_s": 77.0, "rps": 2201.4, "p50_us": 22464, "p99_us": 183111, "errors": 0}


def test_a_cleared_backlog_counts_the_work_due_before_it():
    text = backlog.line({**ROW, "due": 250_000, "clear_s": 50.0, "left_pending": 0})
    assert "100,000 due purchases (inserted in 77.0 s) behind 150,000 due before them, cleared 50.0 s" in text
    assert "(5,000 processed/s; target < 60 s: met)" in text


def test_an_uncleared_backlog_counts_only_its_own_processed_purchases():
    text = backlog.line({**ROW, "due": 100_000, "clear_s": 300.0, "left_pending": 40_000})
    assert "behind 0 due before them, NOT cleared (40,000 left)" in text
    assert "(200 processed/s; target < 60 s: NOT met)" in text

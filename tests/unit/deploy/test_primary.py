"""deploy/primary.py: which host the last failover promoted, read off the ledger's failover lines."""

from __future__ import annotations

from deploy import ledger
from deploy.primary import failover_detail, promoted_host


def _failover(when: str, old: str, new: str, outcome: str = "ok") -> ledger.LedgerEntry:
    return ledger.LedgerEntry(
        who="op",
        when=when,
        kind="failover",
        tag="v1",
        commit="",
        release="r1",
        hosts=[old, new],
        duration_s=1.0,
        outcome=outcome,
        detail=failover_detail(old, "fenced", new),
    )


def test_no_failover_names_no_host():
    assert promoted_host([]) is None


def test_the_newest_successful_failover_wins_whatever_the_order_the_hosts_answered_in():
    back = _failover("2026-12-07T03:00:00+00:00", "db2", "db1")
    first = _failover("2026-12-06T03:00:00+00:00", "db1", "db2")
    assert promoted_host([back, first]) == "db1" and promoted_host([first, back]) == "db1"
    failed = _failover("2026-12-08T03:00:00+00:00", "db1", "db3", outcome="failed")
    assert promoted_host([first, failed]) == "db2"


def test_a_ledger_line_round_trips_to_the_promoted_host():
    line = ledger.format_entry(_failover("2026-12-06T03:00:00+00:00", "host-2", "host-3"))
    assert '"kind":"failover"' in line  # what failover_lines_command greps for
    assert promoted_host(ledger.parse_ledger(line + "\n")) == "host-3"

"""The release ledger: one JSON line per operation; bad releases; the default rollback target."""

from __future__ import annotations

import pytest

from deploy import ledger
from deploy.ledger import LedgerEntry, LedgerError


def entry(**changes) -> LedgerEntry:
    values = dict(
        who="ana@laptop",
        when="2026-11-27T01:00:00+00:00",
        kind="deploy",
        tag="v1",
        commit="abc",
        release="20261127T010000Z-v1",
        hosts=["app1", "app2"],
        duration_s=12.5,
        outcome="ok",
    )
    values.update(changes)
    return LedgerEntry(**values)


def test_format_is_one_sorted_json_line_and_round_trips():
    line = ledger.format_entry(entry())
    assert line == (
        '{"commit":"abc","detail":"","duration_s":12.5,"from_release":null,"hosts":["app1","app2"],'
        '"kind":"deploy","marked_bad":[],"outcome":"ok","release":"20261127T010000Z-v1","tag":"v1",'
        '"when":"2026-11-27T01:00:00+00:00","who":"ana@laptop"}'
    )
    assert ledger.parse_ledger(line + "\n\n" + line + "\n") == [entry(), entry()]


def test_bad_lines_name_their_number():
    with pytest.raises(LedgerError, match="ledger line 2"):
        ledger.parse_ledger(ledger.format_entry(entry()) + "\n{not json\n")
    with pytest.raises(LedgerError, match="outcome 'meh'"):
        entry(outcome="meh")


def test_bad_releases_and_previous_good():
    ids = ["20261127T010000Z-v1", "20261127T020000Z-v2", "20261127T030000Z-v3", "20261127T040000Z-v4"]
    entries = [
        entry(release=ids[2], outcome="rolled_back", marked_bad=[ids[2]]),
        entry(kind="rollback", release=ids[0], from_release=ids[1], marked_bad=[ids[1]]),
    ]
    bad = ledger.bad_releases(entries)
    assert bad == {ids[1], ids[2]}
    assert ledger.previous_good_release(ids, ids[3], bad) == ids[0]
    assert ledger.previous_good_release(ids, ids[0], bad) is None
    assert ledger.last_entry_for(entries, ids[0]).kind == "rollback"
    assert ledger.release_tag(ids[3]) == "v4"


def test_a_restore_line_carries_its_backups_and_deploy_lines_stay_as_before():
    restore = entry(kind="restore", backup="20261126T010000Z-abc123", safety_backup="20261127T025900Z-def456")
    line = ledger.format_entry(restore)
    assert '"backup":"20261126T010000Z-abc123"' in line and '"safety_backup":"20261127T025900Z-def456"' in line
    assert ledger.parse_ledger(line) == [restore]
    no_safety = entry(kind="restore", backup="B1")
    assert '"safety_backup":null' in ledger.format_entry(no_safety)
    assert "backup" not in ledger.format_entry(entry())  # older toolkits still read deploy lines
    assert ledger.entry_note(restore) == (
        "live database replaced from backup 20261126T010000Z-abc123; safety backup 20261127T025900Z-def456"
    )
    assert ledger.entry_note(no_safety).endswith("NO safety backup")
    assert ledger.entry_note(entry(from_release="r0", marked_bad=["r0"])) == "from r0; marked bad: r0"


def test_a_restore_is_not_what_brought_a_release_up():
    deployed = entry()
    restored = entry(kind="restore", backup="B1", when="2026-11-27T02:00:00+00:00")
    assert ledger.last_entry_for([deployed, restored], deployed.release) == deployed

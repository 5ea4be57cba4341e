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


def test_bad_releases_and_the_entry_that_brought_a_release_up():
    ids = ["20261127T010000Z-v1", "20261127T020000Z-v2", "20261127T030000Z-v3", "20261127T040000Z-v4"]
    entries = [
        entry(release=ids[2], outcome="rolled_back", marked_bad=[ids[2]]),
        entry(kind="rollback", release=ids[0], from_release=ids[1], marked_bad=[ids[1]]),
    ]
    bad = ledger.bad_releases(entries)
    assert bad == {ids[1], ids[2]}
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


def went_live(release: str, previous: str | None, kind: str = "deploy", **changes) -> LedgerEntry:
    return entry(kind=kind, release=release, from_release=previous, tag=ledger.release_tag(release), **changes)


def test_the_default_rollback_target_is_what_was_live_before_by_the_ledger():
    a, b, c, a2 = "20261127T010000Z-vA", "20261127T020000Z-vB", "20261127T030000Z-vC", "20261127T040000Z-vA"
    broken = "20261127T035000Z-vBroken"
    entries = [
        went_live(a, None),
        went_live(b, a),
        went_live(c, b),
        went_live(broken, c, outcome="rolled_back", marked_bad=[broken]),  # never went live
        went_live(a2, c),  # vA redeployed: a new release of an old tag
    ]
    ids = [a, b, c, broken, a2]
    assert ledger.live_history(entries) == [a, b, c, a2]
    assert ledger.default_rollback_target(entries, ids, a2) == c
    # The operator rolls vA away with `rollback --to vB` (which marks a2 bad). Ordering by release
    # id would now pick the first vA, the code just rolled away from; the ledger says vC was live
    # before it.
    entries.append(went_live(b, a2, kind="rollback", marked_bad=[a2]))
    assert ledger.default_rollback_target(entries, ids, b) == c
    # Rolled back to the oldest release: what was live before it is newer by id, and still a target.
    entries.append(went_live(a, b, kind="rollback", marked_bad=[b]))
    assert ledger.default_rollback_target(entries, ids, a) == c
    assert ledger.default_rollback_target(entries, [a, b, a2], a) is None  # vC was pruned
    assert ledger.default_rollback_target([], ids, a2) is None
    restore = entry(kind="restore", release=c, backup="B1")
    assert ledger.live_history([went_live(a, None), restore]) == [a]


def test_a_started_line_goes_once_its_operation_finished_and_alone_reads_as_interrupted():
    first = entry(outcome="started", duration_s=0)
    finished = entry(duration_s=30.1)
    killed = entry(
        outcome="started", duration_s=0, when="2026-11-27T02:00:00+00:00", release="20261127T020000Z-v2", tag="v2"
    )
    lines = "\n".join(ledger.format_entry(e) for e in (first, finished, killed))
    settled = ledger.parse_ledger(lines)
    assert settled[0] == finished
    assert settled[1].outcome == "interrupted" and settled[1].release == killed.release
    assert settled[1].detail == ledger.NEVER_FINISHED and settled[1].marked_bad == []
    # Another operator's or another kind's final line does not settle it.
    other = entry(outcome="rolled_back", who="bo@laptop", when=killed.when, release=killed.release)
    assert ledger.parse_ledger(ledger.format_entry(killed) + "\n" + ledger.format_entry(other))[0].outcome == (
        "interrupted"
    )


def test_an_interrupted_operation_never_went_live_nor_marks_anything_bad():
    entries = [
        entry(),
        entry(
            when="2026-11-27T02:00:00+00:00",
            release="20261127T020000Z-v2",
            tag="v2",
            outcome="interrupted",
            from_release="20261127T010000Z-v1",
        ),
    ]
    assert ledger.live_history(entries) == ["20261127T010000Z-v1"]
    assert ledger.bad_releases(entries) == set()
    assert ledger.default_rollback_target(entries, ["20261127T010000Z-v1"], "20261127T010000Z-v1") is None
    # Pruned like a bad release, so interrupted deploys cannot push the good ones out.
    assert ledger.never_live_releases(entries) == {"20261127T020000Z-v2"}
    went_live_later = entries + [entry(release="20261127T020000Z-v2", when="2026-11-27T03:00:00+00:00")]
    assert ledger.never_live_releases(went_live_later) == set()

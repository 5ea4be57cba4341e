"""The release ledger, state/ledger.jsonl on every host: one JSON line per deploy, rollback,
live restore or database failover (its `detail` names the old and the new primary).

A line says who (local user), when, what (tag, commit, release id), where (hosts), how long and
how it ended (ok / failed / rolled_back / interrupted: the operator's SIGINT or SIGTERM, every
host put back). A deploy or rollback first writes a `started` line; one that never finished (the
task SIGKILLed, the laptop gone) keeps only that line, which reads as `interrupted`. The successful lines give the order releases went live,
which picks the default rollback target. `marked_bad` lists releases that must not be chosen as a
default rollback target: a deploy whose health gate failed, and a release rolled back from.
A `restore` line (the live database replaced from a backup) names the release that served, the
`backup` restored and the `safety_backup` taken first (null: none was taken).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

OUTCOMES = ("ok", "failed", "rolled_back", "interrupted", "started")
NEVER_FINISHED = "never finished: the task was killed or lost its hosts (or it still runs: see `invoke lock`)"
KINDS = ("deploy", "rollback", "restore", "failover")
# Lines that record an event on the database, not a release going live.
NOT_RELEASES = ("restore", "failover")
RESTORE_FIELDS = ("backup", "safety_backup")


class LedgerError(ValueError):
    """A ledger line that is not a valid entry."""


@dataclass(frozen=True)
class LedgerEntry:
    who: str
    when: str
    kind: str
    tag: str
    commit: str
    release: str
    hosts: list[str]
    duration_s: float
    outcome: str
    from_release: str | None = None
    marked_bad: list[str] = field(default_factory=list)
    detail: str = ""
    backup: str = ""
    safety_backup: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LedgerError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.outcome not in OUTCOMES:
            raise LedgerError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")


def format_entry(entry: LedgerEntry) -> str:
    """One line of JSON, keys sorted, no newline inside. Only restore lines carry the restore
    fields, so deploy and rollback lines stay readable by toolkits that predate them."""
    data = asdict(entry)
    if entry.kind != "restore":
        for key in RESTORE_FIELDS:
            del data[key]
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def parse_ledger(text: str) -> list[LedgerEntry]:
    """Every entry, oldest first, `started` lines settled (settle_started). A malformed line is an
    error naming its line number."""
    return settle_started(_parse_lines(text))


def _same_operation(entry: LedgerEntry) -> tuple[str, str, str, str]:
    return (entry.kind, entry.release, entry.when, entry.who)


def settle_started(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """A `started` line goes when its operation's final line exists (same kind, release, start
    time and operator); alone, it becomes an `interrupted` entry that says it never finished."""
    finished = {_same_operation(e) for e in entries if e.outcome != "started"}
    settled = []
    for entry in entries:
        if entry.outcome == "started":
            if _same_operation(entry) in finished:
                continue
            entry = replace(entry, outcome="interrupted", detail=entry.detail or NEVER_FINISHED)
        settled.append(entry)
    return settled


def _parse_lines(text: str) -> list[LedgerEntry]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            entries.append(LedgerEntry(**data))
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"ledger line {number}: {exc}") from None
    return entries


def entry_note(entry: LedgerEntry) -> str:
    """What a report says about an entry besides kind, tag and outcome (one line)."""
    if entry.kind == "failover":
        return f"database failover: {entry.detail}"
    if entry.kind == "restore":
        safety = f"safety backup {entry.safety_backup}" if entry.safety_backup else "NO safety backup"
        return f"live database replaced from backup {entry.backup}; {safety}"
    parts = [f"from {entry.from_release}"] if entry.from_release else []
    if entry.marked_bad:
        parts.append(f"marked bad: {', '.join(entry.marked_bad)}")
    return "; ".join(parts)


def bad_releases(entries: list[LedgerEntry]) -> set[str]:
    bad: set[str] = set()
    for entry in entries:
        bad.update(entry.marked_bad)
    return bad


def never_live_releases(entries: list[LedgerEntry]) -> set[str]:
    """Releases of interrupted deploys that never served: no rollback target, and pruned like bad
    ones, so a run of interrupted deploys cannot push the good releases out."""
    interrupted = {e.release for e in entries if e.kind == "deploy" and e.outcome == "interrupted"}
    return interrupted - set(live_history(entries))


def last_entry_for(entries: list[LedgerEntry], release: str) -> LedgerEntry | None:
    """The newest entry that brought `release` up (deploy or rollback), if any."""
    for entry in reversed(entries):
        if entry.release == release and entry.kind not in NOT_RELEASES:
            return entry
    return None


def live_history(entries: list[LedgerEntry]) -> list[str]:
    """The releases in the order they went live, oldest first: each successful deploy or rollback
    made its `release` live after its `from_release`. A failed one never went live."""
    history: list[str] = []
    for entry in entries:
        if entry.kind in NOT_RELEASES or entry.outcome != "ok":
            continue
        for release in (entry.from_release, entry.release):
            if release and (not history or history[-1] != release):
                history.append(release)
    return history


def default_rollback_target(entries: list[LedgerEntry], release_ids: list[str], current: str | None) -> str | None:
    """The release that was live before the current one, by the ledger: the newest in the live
    history that is not current, not marked bad and still on the host. Release ids only order
    deploys, and a redeploy or a `rollback --to` makes that order differ from what was live."""
    bad, on_host = bad_releases(entries), set(release_ids)
    for release in reversed(live_history(entries)):
        if release != current and release not in bad and release in on_host:
            return release
    return None


def release_tag(release_id: str) -> str:
    """`20261127T010203Z-v1.2.3` -> `v1.2.3`."""
    return release_id.split("-", 1)[1] if "-" in release_id else release_id

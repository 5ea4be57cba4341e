"""The kernel's scheduler setting for a bench run: as production's hosts have it.

`provision --system` turns the scheduler's autogroup off on every host (deploy.commands.
sysctl_command). With it on, the kernel splits the CPU fairly between sessions: the bench's
PostgreSQL (pg_ctl starts it in a session of its own) and everything else each get one core
when both are busy, which doubled ingestion's p99 here. So the bench turns it off for its run
when it can (root) and puts the machine's value back afterwards; the header says what held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

AUTOGROUP_KNOB = Path("/proc/sys/kernel/sched_autogroup_enabled")


def autogroup_note(before: str | None, during: str | None) -> str:
    """The header's words for the setting the run had, given the knob's value before and during it."""
    if before is None:
        return "no scheduler autogroup in this kernel (as production)"
    if during == "0":
        return (
            "scheduler autogroup off (as production)"
            if before == "0"
            else "scheduler autogroup off for this run, as production (restored afterwards)"
        )
    return (
        "scheduler autogroup ON, NOT as production: run as root, or "
        "`sysctl -w kernel.sched_autogroup_enabled=0` as provision --system sets it"
    )


def _read(knob: Path) -> str | None:
    try:
        return knob.read_text().strip()
    except OSError:
        return None


@contextmanager
def production_scheduler(keep: bool = False, knob: Path = AUTOGROUP_KNOB) -> Iterator[str]:
    """Autogroup off for the duration (unless `keep`), then back as it was; yields the header note."""
    before = _read(knob)
    changed = False
    if before not in (None, "0") and not keep:
        try:
            knob.write_text("0\n")
            changed = True
        except OSError:
            pass  # not root: the note says the run was not as production
    try:
        yield autogroup_note(before, _read(knob))
    finally:
        if changed:
            knob.write_text(f"{before}\n")

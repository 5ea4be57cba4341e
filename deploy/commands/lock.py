"""The deploy lock (one operation per host at a time) and the deploy ledger's append."""

from __future__ import annotations

from deploy.commands.layout import Layout, q

LOCK_HELD_EXIT = 3


def lock_acquire_command(layout: Layout, holder: str) -> str:
    """Create the lock file only if absent (noclobber = O_EXCL); otherwise print the holder.

    Exits LOCK_HELD_EXIT with the current holder's details on stdout when someone else holds it.
    """
    return (
        f"mkdir -p {q(layout.state)} && {{ ( set -C; printf '%s\\n' {q(holder)} > {q(layout.lock)} ) 2>/dev/null"
        f" || {{ cat {q(layout.lock)}; exit {LOCK_HELD_EXIT}; }}; }}"
    )


def lock_release_command(layout: Layout, token: str | None) -> str:
    """Remove the lock; with a token only when it is still ours (never someone else's lock)."""
    if token is None:
        return f"rm -f {q(layout.lock)}"
    return f"if grep -qF {q(token)} {q(layout.lock)} 2>/dev/null; then rm -f {q(layout.lock)}; fi"


def lock_status_command(layout: Layout) -> str:
    return f"cat {q(layout.lock)} 2>/dev/null || true"


def ledger_append_command(layout: Layout, line: str) -> str:
    return f"mkdir -p {q(layout.state)} && printf '%s\\n' {q(line)} >> {q(layout.ledger)}"

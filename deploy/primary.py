"""The database host: where backups, PITR, the one migrate of a deploy and the crash drill run.

One function answers it for every task (ADR 0046): `--host` when the operator names one, else the
host the newest `failover` ledger line promoted, else the environment's first host. The ledger is
on every app host, so the answer needs no reachable cluster, no psql rights and no inventory edit
after `invoke failover`; an unreachable host is skipped and named.
"""

from __future__ import annotations

import re
import sys
from shlex import quote as q

from deploy import ledger
from deploy.errors import DeployError
from deploy.session import Session, layout
from deploy.ssh import ConnectionFailed, HostKeyError, Remote

# failover's ledger detail: "primary OLD (fenced) -> NEW" (deploy/standby.py writes it with failover_detail).
PROMOTED = re.compile(r"-> (?P<name>\S+)$")


class DatabaseHostError(DeployError):
    """--host names no host of the environment."""


def failover_detail(old_primary: str, fenced: str, new_primary: str) -> str:
    return f"primary {old_primary} ({fenced}) -> {new_primary}"


def promoted_host(entries: list[ledger.LedgerEntry]) -> str | None:
    """The host the newest successful failover promoted, or None when there was none."""
    failovers = [e for e in entries if e.kind == "failover" and e.outcome == "ok"]
    for entry in sorted(failovers, key=lambda e: e.when, reverse=True):
        match = PROMOTED.search(entry.detail)
        if match:
            return match.group("name")
    return None


def failover_lines_command(remote: Remote) -> str:
    return f'grep -h \'"kind":"failover"\' {q(layout(remote).ledger)} 2>/dev/null || true'


def database_host(session: Session, wanted: str | None = None) -> Remote:
    """The host that holds the primary database now (module docstring); says why when not the first."""
    names = [r.host.name for r in session.remotes]
    if wanted is not None:
        if wanted not in names:
            raise DatabaseHostError(f"no host named {wanted!r} in this environment (hosts: {', '.join(names)})")
        return session.remotes[names.index(wanted)]
    if len(session.remotes) == 1:
        return session.remotes[0]
    entries: list[ledger.LedgerEntry] = []
    for remote in session.remotes:
        try:
            text = remote.query(failover_lines_command(remote), check=False).stdout
        except (ConnectionFailed, HostKeyError) as error:
            _note(
                f"[{remote.host.name}] skipped while looking for the database host: {str(error).splitlines()[0][:200]}"
            )
            continue
        try:
            entries += ledger.parse_ledger(text)
        except ledger.LedgerError as error:
            _note(f"[{remote.host.name}] a failover line of the ledger is unreadable ({error}); skipped")
    promoted = promoted_host(entries)
    if promoted is None:
        return session.remotes[0]
    if promoted not in names:
        _note(
            f"the last failover promoted {promoted}, which is not in the inventory: using the first host, "
            f"{names[0]} (name the database host with --host)"
        )
        return session.remotes[0]
    chosen = session.remotes[names.index(promoted)]
    if chosen is not session.remotes[0]:
        _note(f"[{promoted}] the database host (the last failover promoted it)")
    return chosen


def _note(message: str) -> None:
    # stderr: a task's stdout may be one JSON object (`backups --json`, `stats --json`).
    print(message, file=sys.stderr, flush=True)

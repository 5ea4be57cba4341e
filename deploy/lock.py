"""The deploy lock on every host, taken in inventory order so two concurrent operations never each
hold half of the hosts."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from deploy import commands as cmd
from deploy.errors import LockHeldError
from deploy.local_git import operator, utc_now
from deploy.session import Session, layout
from deploy.ssh import Remote, RemoteCommandError


def describe_holder(text: str) -> str:
    """The lock file's holder as words, "alice@laptop (deploy v1.2.0) since 2026-01-02T03:04:05+00:00",
    without its token (the token is what lets its owner release it, and only its owner)."""
    try:
        holder = json.loads(text)
    except ValueError:
        holder = None
    if not isinstance(holder, dict):
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        return f"an unreadable lock file ({first!r})"
    who = str(holder.get("holder") or "someone")
    operation = f" ({holder['operation']})" if holder.get("operation") else ""
    since = f" since {holder['since']}" if holder.get("since") else ""
    return who + operation + since


@dataclass
class Lock:
    session: Session
    operation: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    held: list[Remote] = field(default_factory=list)

    def holder(self) -> str:
        return json.dumps(
            {
                "holder": operator(),
                "operation": self.operation,
                "since": utc_now().isoformat(timespec="seconds"),
                "token": self.token,
            },
            sort_keys=True,
        )

    def __enter__(self) -> Lock:
        holder = self.holder()
        for remote in self.session.remotes:  # in order: two deploys never each hold half
            result = remote.run(cmd.lock_acquire_command(layout(remote), holder), check=False)
            if result.exited == cmd.LOCK_HELD_EXIT:
                self.release()
                raise LockHeldError(
                    f"[{remote.host.name}] the deploy lock is held by {describe_holder(result.stdout)}; "
                    f"if that operation is really gone, free it with `invoke lock --release`"
                )
            if not result.ok:
                self.release()
                raise RemoteCommandError(remote.host, "lock", result.exited, result.stdout, result.stderr)
            self.held.append(remote)
        return self

    def release(self) -> None:
        held, self.held = self.held, []
        if held:  # any order will do: only taking it must go host by host
            self.session.parallel(
                lambda remote: remote.run(cmd.lock_release_command(layout(remote), self.token), check=False), held
            )

    def __exit__(self, *exc: object) -> None:
        self.release()

"""The deploy lock on every host, taken in inventory order so two concurrent operations never each
hold half of the hosts.

A lock taken on purpose (`invoke lock --acquire --message REASON`) freezes deploys: it is the same
file, held by the operation "deploys frozen" with the operator's reason, until `invoke lock --release`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from deploy import commands as cmd
from deploy import interrupts
from deploy.errors import LockHeldError
from deploy.local_git import operator, utc_now
from deploy.session import Session, layout
from deploy.ssh import Remote, RemoteCommandError

FREEZE = "deploys frozen"
MESSAGE_LIMIT = 200


def freeze_message(text: str | None) -> str:
    """The reason of a freeze as one line; ValueError when there is none (a freeze says why)."""
    message = " ".join((text or "").split())
    if not message:
        raise ValueError('a freeze needs a reason: --message "why deploys must wait"')
    if len(message) > MESSAGE_LIMIT:
        raise ValueError(f"--message takes at most {MESSAGE_LIMIT} characters, got {len(message)}")
    return message


def holder_record(who: str, operation: str, since: str, token: str, message: str = "") -> str:
    """The lock file's content: one line of JSON (the reason only when there is one)."""
    record = {"holder": who, "operation": operation, "since": since, "token": token}
    if message:
        record["message"] = message
    return json.dumps(record, sort_keys=True)


def describe_holder(text: str) -> str:
    """The lock file's holder as words, "alice@laptop (deploy v1.2.0) since 2026-01-02T03:04:05+00:00",
    with a freeze's reason ("(deploys frozen: db upgrade)"), without its token (the token is what
    lets its owner release it, and only its owner)."""
    try:
        holder = json.loads(text)
    except ValueError:
        holder = None
    if not isinstance(holder, dict):
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        return f"an unreadable lock file ({first!r})"
    who = str(holder.get("holder") or "someone")
    what = ": ".join(str(holder[key])[:MESSAGE_LIMIT] for key in ("operation", "message") if holder.get(key))
    operation = f" ({what})" if what else ""
    since = f" since {holder['since']}" if holder.get("since") else ""
    return who + operation + since


def held_message(host_name: str, text: str) -> str:
    """Why an operation cannot start: who holds the lock, and how to free it. A freeze is on
    purpose, so its line says how to lift it rather than suggesting its holder is gone."""
    try:
        frozen = json.loads(text).get("operation") == FREEZE
    except (ValueError, AttributeError):
        frozen = False
    advice = (
        "lift the freeze with `invoke lock --release` when that reason no longer holds"
        if frozen
        else "if that operation is really gone, free it with `invoke lock --release`"
    )
    return f"[{host_name}] the deploy lock is held by {describe_holder(text)}; {advice}"


@dataclass
class Lock:
    session: Session
    operation: str
    message: str = ""
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    held: list[Remote] = field(default_factory=list)

    def holder(self) -> str:
        return holder_record(
            operator(), self.operation, utc_now().isoformat(timespec="seconds"), self.token, self.message
        )

    def acquire(self) -> None:
        """Take the lock on every host, in order; on a held one, free what was taken and refuse."""
        holder = self.holder()
        for remote in self.session.remotes:  # in order: two deploys never each hold half
            result = remote.run(
                cmd.lock_acquire_command(layout(remote), holder),
                check=False,
                what="take the deploy lock",
                key=f"set -C; printf HOLDER > {layout(remote).lock}",
            )
            if result.exited == cmd.LOCK_HELD_EXIT:
                self.release()
                raise LockHeldError(held_message(remote.host.name, result.stdout))
            if not result.ok:
                self.release()
                raise RemoteCommandError(remote.host, "lock", result.exited, result.stdout, result.stderr)
            self.held.append(remote)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def release(self) -> None:
        held, self.held = self.held, []
        if held:  # any order will do: only taking it must go host by host
            with interrupts.deferred():  # never left held on some hosts by a signal
                self.session.parallel(
                    lambda remote: remote.run(
                        cmd.lock_release_command(layout(remote), self.token),
                        check=False,
                        what="release the deploy lock",
                        key=f"rm -f {layout(remote).lock} (if it still holds this run's token)",
                    ),
                    held,
                )

    def __exit__(self, *exc: object) -> None:
        self.release()

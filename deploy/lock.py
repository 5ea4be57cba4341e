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
                    f"[{remote.host.name}] the deploy lock is held: {result.stdout.strip()}\n"
                    f"If that operation is really gone, free it with `invoke lock --release`."
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

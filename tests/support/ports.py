"""Ports for tests that need nothing listening."""

from __future__ import annotations

from devtools.local_sshd import ports_free_on_all


def closed_port(*addresses: str) -> int:
    """A port nobody listens on at any of `addresses` (default 127.0.0.1): bound, read and released,
    so a connection there is refused. The suite's sshd hosts hold ports on 127.0.0.2 and .3."""
    return ports_free_on_all(addresses or ("127.0.0.1",))[0]

"""Environment for the ops CLI: the same ENV_FILE the service reads, with one-line errors."""

from __future__ import annotations

import sys

from server.config import ConfigError, load_environment


def require(names: list[str]) -> dict[str, str]:
    """The effective environment; exits 2 with one line naming the first missing variable."""
    try:
        env = load_environment()
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        raise SystemExit(2) from None
    for name in names:
        if not env.get(name):
            print(f"configuration error: {name}: is required", file=sys.stderr)
            raise SystemExit(2)
    return env

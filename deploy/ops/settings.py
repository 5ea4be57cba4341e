"""Environment for the ops CLI: the same ENV_FILE the service reads, with one-line errors."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

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


def runnable(command: str, env_file: str | None = None) -> str:
    """`command` as an operator runs it on this host: there is no `clicknback-ops` executable, the
    CLI is the release venv's `python -m deploy.ops.cli`, with the same ENV_FILE as this run."""
    env_file = env_file if env_file is not None else os.environ.get("ENV_FILE", "")
    path = Path(os.path.abspath(env_file)) if env_file else None
    if path is None or path.parent.name != "shared":
        return f"python -m deploy.ops.cli {command} (from the release directory)"
    current = shlex.quote(str(path.parent.parent / "current"))
    return f"cd {current} && ENV_FILE={shlex.quote(str(path))} ./.venv/bin/python -m deploy.ops.cli {command}"

"""`python -m deploy.ops.stamp LOG COMMAND...`: run COMMAND, appending each line of its output
(stdout and stderr, in order) to LOG with a UTC timestamp; exit with COMMAND's status.

cron runs the scheduled ops CLI jobs through it, so every cron.log line says when it was written
(cron itself adds nothing, and a `date` in the crontab line would need cron's `%` escaping).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime


def stamped(line: bytes, now: datetime) -> bytes:
    """One output line as cron.log keeps it: `2026-01-04T02:00:01Z <line>`, newline-terminated."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ ").encode() + line.rstrip(b"\r\n") + b"\n"


def exit_status(returncode: int) -> int:
    """The child's status as a shell reports it: 128 + N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m deploy.ops.stamp LOG COMMAND [ARG...]", file=sys.stderr)
        return 2
    log_path, command = argv[0], argv[1:]
    with open(log_path, "ab") as log:
        try:
            child = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        except OSError as error:
            log.write(stamped(f"cannot run {command[0]}: {error.strerror or error}".encode(), datetime.now(UTC)))
            return 127
        assert child.stdout is not None
        for line in child.stdout:  # ends when the child (and whatever inherited its output) closes it
            log.write(stamped(line, datetime.now(UTC)))
            log.flush()
        return exit_status(child.wait())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

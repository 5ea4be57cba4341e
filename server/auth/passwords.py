"""Password hashing: argon2id for new hashes, bcrypt accepted for imported ones (API.md §2.3).

Hashing costs about 0.3 s of CPU (argon2id's defaults), so it runs on a small thread pool
(argon2 and bcrypt release the GIL) and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library defaults (OWASP minimum or better)
_executor: ThreadPoolExecutor | None = None
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")

COMPLEXITY_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^.{8,}$", re.S), "Password must be at least 8 characters long."),
    (re.compile(r"[A-Z]"), "Password must contain at least one uppercase letter."),
    (re.compile(r"[a-z]"), "Password must contain at least one lowercase letter."),
    (re.compile(r"[0-9]"), "Password must contain at least one digit."),
    (re.compile(r"[^A-Za-z0-9]"), "Password must contain at least one special character."),
]


def complexity_failure(password: str) -> str | None:
    """The first complexity rule the password breaks, or None."""
    for pattern, reason in COMPLEXITY_RULES:
        if not pattern.search(password):
            return reason
    return None


def _lower_priority() -> None:
    """Hashing threads (and the lane threads argon2 starts from them) run in SCHED_IDLE, so a login
    flood cannot take CPU from the event loop: probes and reads keep answering.

    SCHED_IDLE, not only nice 19: the kernel lets a waking normal thread preempt an idle-class one
    at once, while a nice-19 thread keeps a core for the rest of its slice. `/health/live` during
    the login flood, interleaved pairs (docs/benchmarks.md): p99 19.6-21.0 ms against 23.1-25.8 ms
    at concurrency 64 (six pairs), 6.6-6.8 ms against 9.7-10.7 ms at 16 (two). When nothing else
    wants the CPU, hashing runs at full speed (login alone: 7 req/s either way). Where SCHED_IDLE
    is unavailable, nice 19."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread
        return
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def configure_executor(threads: int) -> None:
    global _executor
    if _executor is not None:
        _executor.shutdown(wait=False)
    _executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="password-hash", initializer=_lower_priority)


def _pool() -> ThreadPoolExecutor:
    if _executor is None:
        configure_executor(1)
    assert _executor is not None
    return _executor


def hash_sync(password: str) -> str:
    return _hasher.hash(password)


def verify_sync(password: str, hashed: str) -> tuple[bool, bool]:
    """(matches, needs_rehash): bcrypt hashes always need a rehash to argon2id."""
    if hashed.startswith(BCRYPT_PREFIXES):
        # bcrypt only reads the first 72 bytes; newer releases refuse longer input.
        candidate = password.encode("utf-8")[:72]
        try:
            return bcrypt.checkpw(candidate, hashed.encode("ascii")), True
        except ValueError:
            return False, False
    try:
        _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, _hasher.check_needs_rehash(hashed)


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Verified against for unknown emails, so both paths cost the same time."""
    return _hasher.hash("timing-equaliser-not-a-real-password")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool(), hash_sync, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, bool]:
    target = hashed if hashed is not None else dummy_hash()
    matches, needs_rehash = await asyncio.get_running_loop().run_in_executor(_pool(), verify_sync, password, target)
    return (matches and hashed is not None), needs_rehash

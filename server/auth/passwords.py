"""Password hashing: argon2id for new hashes, bcrypt accepted for imported ones (API.md §2.3).

Hashes run on a small thread pool (argon2 and bcrypt release the GIL), never on the event loop,
behind a bounded queue: when it is full, login and registration answer 503 SERVICE_BUSY at once
instead of waiting behind a flood (docs/adr/0010-password-hashing-capacity.md).

argon2id runs in libsodium (PyNaCl), which picks the CPU's vector instructions at run time and costs
about a quarter less per hash than argon2-cffi's build; argon2-cffi reads the hashes' parameters and
makes the hashes libsodium cannot, with more than one lane (docs/adr/0049-argon2id-in-libsodium.md).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from nacl import pwhash
from nacl.exceptions import CryptoError

from server.errors import service_busy

T = TypeVar("T")
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
ARGON2ID_PREFIX = "$argon2id$"
RETRY_AFTER_SECONDS = 1
# Hashing threads run in the normal scheduling class at the process's own priority: a fair share.
# A lower class or priority starves them whenever the service is busy (docs/adr/0010); a flood
# still takes at most PASSWORD_HASH_THREADS cores per process (bounded threads and queue).


@dataclass(frozen=True)
class HashParameters:
    """argon2id cost: OWASP's recommendation (19 MiB, 2 iterations, 1 lane) is the floor."""

    memory_kib: int = 19456
    iterations: int = 2
    parallelism: int = 1

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.iterations, memory_cost=self.memory_kib, parallelism=self.parallelism, type=Type.ID
        )

    def hash(self, password: str) -> str:
        """A new argon2id hash in the standard encoding; libsodium makes it unless it needs lanes."""
        if self.parallelism == 1:
            encoded = pwhash.argon2id.str(password.encode(), opslimit=self.iterations, memlimit=self.memory_kib * 1024)
            return encoded.decode("ascii")
        return self.hasher().hash(password)


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


class HashCapacity:
    """At most `threads` hashes at once and `queue` more waiting; anything beyond is refused.

    A slot is freed when the hash itself finishes, not when its request gives up: a request
    cancelled by its client still leaves its hash running on a thread."""

    def __init__(self, threads: int, queue: int) -> None:
        self.limit = threads + queue
        self.taken = 0
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="password-hash")

    def has_room(self) -> bool:
        return self.taken < self.limit

    async def run(self, work: Callable[..., T], *args: object) -> T:
        if not self.has_room():
            raise service_busy(RETRY_AFTER_SECONDS)
        self.taken += 1
        loop = asyncio.get_running_loop()
        future: Future[T] = self.executor.submit(work, *args)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(future, loop=loop)

    def _release(self) -> None:
        self.taken -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=False)


class FailureTiming:
    """How long a wrong password takes, whatever the account's hash (API.md §2.3, Timing).

    A bcrypt hash costs several times an argon2id one, so a fast "wrong password" would say that
    the email exists with a modern hash. Every failure is held (asleep: no thread, no connection)
    until the typical time of the costliest kind of verification this process has seen. A kind is
    the algorithm with its cost (`$2b$12$`, `$argon2id$v=19$m=19456,t=2,p=1`): each keeps its own
    average, so cheap hashes (a test's bcrypt cost 4) never pull the floor below a costly one."""

    SMOOTHING = 0.2
    CEILING_SECONDS = 2.0

    def __init__(self) -> None:
        self.typical: dict[str, float] = {}

    def observe(self, kind: str, seconds: float) -> None:
        previous = self.typical.get(kind)
        self.typical[kind] = seconds if previous is None else previous + self.SMOOTHING * (seconds - previous)

    def floor(self) -> float:
        # Capped: one stalled verification of a rare kind must not hold every failure for seconds.
        return min(self.CEILING_SECONDS, max(self.typical.values(), default=0.0))


_parameters = HashParameters()
_hasher = _parameters.hasher()
_capacity: HashCapacity | None = None
_timing = FailureTiming()
# bcrypt cost 12, as imported seed data has it (server/seed.py): what a bcrypt verification costs
# before this process has seen one.
_CALIBRATION_BCRYPT = "$2b$12$PGfNLSCBlpbmqA03a8as1e9ieHtk3PfVbaL2nPMl3uZj4FMH4EQFm"


def _kind(hashed: str) -> str:
    """The algorithm and cost of a hash, without its salt and digest."""
    return hashed[:7] if hashed.startswith(BCRYPT_PREFIXES) else hashed.rsplit("$", 2)[0]


def configure(parameters: HashParameters, threads: int, queue: int) -> None:
    global _parameters, _hasher, _capacity
    if _capacity is not None:
        _capacity.close()
    if parameters != _parameters:
        _parameters, _hasher = parameters, parameters.hasher()
        dummy_hash.cache_clear()
    _capacity = HashCapacity(threads, queue)


def _gate() -> HashCapacity:
    if _capacity is None:
        configure(_parameters, 1, 8)
    assert _capacity is not None
    return _capacity


def hash_sync(password: str) -> str:
    return _parameters.hash(password)


def _argon2_matches(password: str, hashed: str) -> bool:
    """Whether an argon2 hash matches; libsodium verifies argon2id of any lanes, argon2-cffi the rest."""
    if hashed.startswith(ARGON2ID_PREFIX):
        try:
            return pwhash.argon2id.verify(hashed.encode("ascii"), password.encode())
        except (CryptoError, UnicodeEncodeError, ValueError):  # a mismatch, or a hash it cannot read
            return False
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_sync(password: str, hashed: str) -> tuple[bool, bool]:
    """(matches, needs_rehash): bcrypt hashes always need a rehash to argon2id, and argon2 hashes
    whose parameters differ from the configured ones need one too."""
    started = time.perf_counter()
    if hashed.startswith(BCRYPT_PREFIXES):
        # bcrypt only reads the first 72 bytes; newer releases refuse longer input.
        candidate = password.encode("utf-8")[:72]
        try:
            matches = bcrypt.checkpw(candidate, hashed.encode("ascii"))
        except ValueError:
            return False, False
        _timing.observe(_kind(hashed), time.perf_counter() - started)
        return matches, True
    matches = _argon2_matches(password, hashed)
    _timing.observe(_kind(hashed), time.perf_counter() - started)
    return (True, _hasher.check_needs_rehash(hashed)) if matches else (False, False)


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Verified against for unknown emails, so both paths cost the same time."""
    return _parameters.hash("timing-equaliser-not-a-real-password")


async def hash_password(password: str) -> str:
    """A new argon2id hash; 503 SERVICE_BUSY at once when the hashing queue is full."""
    return await _gate().run(hash_sync, password)


async def rehash_if_room(password: str) -> str | None:
    """A new hash for an upgrade on login, or None when the queue is full: the login itself has
    already cost a hash, and the upgrade can wait for the next one."""
    gate = _gate()
    return await gate.run(hash_sync, password) if gate.has_room() else None


async def verify_password(password: str, hashed: str | None) -> tuple[bool, bool]:
    """(matches, needs_rehash). A mismatch returns no sooner than the failure floor (FailureTiming)."""
    gate = _gate()
    started = time.perf_counter()
    target = hashed if hashed is not None else dummy_hash()
    matches, needs_rehash = await gate.run(verify_sync, password, target)
    matches = matches and hashed is not None
    if not matches:
        if _kind(_CALIBRATION_BCRYPT) not in _timing.typical and gate.has_room():  # once per process
            await gate.run(verify_sync, "calibration", _CALIBRATION_BCRYPT)
        await asyncio.sleep(max(0.0, _timing.floor() - (time.perf_counter() - started)))
    return matches, needs_rehash

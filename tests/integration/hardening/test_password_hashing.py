"""Password hashing (API.md §2.3): argon2id at OWASP's parameters, upgrades on login, a bounded
hashing queue that answers 503 SERVICE_BUSY at once, and wrong passwords that take the same time
whatever the account's hash."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid

import bcrypt
import pytest
from argon2 import PasswordHasher

from server.auth import passwords
from server.config import ConfigError, load_settings
from tests.conftest import TEST_KEY, TEST_PASSWORD

OWASP = "$argon2id$v=19$m=19456,t=2,p=1$"


async def _insert_user(conn, hashed: str, email: str | None = None) -> str:
    email = email or f"u-{uuid.uuid4().hex[:10]}@example.test"
    user_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO users (id, email, hashed_password, role, active) VALUES ($1, $2, $3, 'user', true)",
        user_id,
        email,
        hashed,
    )
    await conn.execute("INSERT INTO wallets (user_id) VALUES ($1)", user_id)
    return email


async def test_new_hashes_use_owasp_parameters_and_other_parameters_are_rehashed_on_login(client, conn):
    created = await client.post("/api/v1/users", json={"email": "new@example.test", "password": TEST_PASSWORD})
    assert created.status_code == 201
    stored = await conn.fetchval("SELECT hashed_password FROM users WHERE email = 'new@example.test'")
    assert stored.startswith(OWASP)
    # The library's defaults (64 MiB, t=3, p=4), as hashes made before this release have them.
    legacy = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(TEST_PASSWORD)
    email = await _insert_user(conn, legacy)
    wrong = await client.post("/api/v1/auth/login", json={"email": email, "password": "Wrong!Pass1"})
    assert wrong.status_code == 401
    assert await conn.fetchval("SELECT hashed_password FROM users WHERE email = $1", email) == legacy
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": TEST_PASSWORD})
    assert login.status_code == 200
    upgraded = await conn.fetchval("SELECT hashed_password FROM users WHERE email = $1", email)
    assert upgraded.startswith(OWASP) and upgraded != legacy
    again = await client.post("/api/v1/auth/login", json={"email": email, "password": TEST_PASSWORD})
    assert again.status_code == 200
    assert await conn.fetchval("SELECT hashed_password FROM users WHERE email = $1", email) == upgraded


def test_hash_parameters_are_configurable_upwards_never_below_owasp():
    base = {"DATABASE_URL": "postgres://u@127.0.0.1/db", "OAUTH_HASH_KEY": TEST_KEY, "ENV_FILE": "/dev/null"}
    settings = load_settings({**base, "PASSWORD_HASH_MEMORY_KIB": "32768", "PASSWORD_HASH_ITERATIONS": "3"})
    parameters = passwords.HashParameters(
        settings.password_hash_memory_kib, settings.password_hash_iterations, settings.password_hash_parallelism
    )
    assert parameters.hasher().hash("x").startswith("$argon2id$v=19$m=32768,t=3,p=1$")
    for variable, value in [("PASSWORD_HASH_MEMORY_KIB", "19455"), ("PASSWORD_HASH_ITERATIONS", "1")]:
        with pytest.raises(ConfigError):
            load_settings({**base, variable: value})


async def test_a_full_hashing_queue_answers_503_service_busy_at_once(client, user):
    gate = passwords._gate()
    release = threading.Event()
    held = [asyncio.ensure_future(gate.run(release.wait, 30)) for _ in range(gate.limit)]
    try:
        await asyncio.sleep(0)
        started = time.monotonic()
        login = await client.post("/api/v1/auth/login", json={"email": user.email, "password": TEST_PASSWORD})
        register = await client.post("/api/v1/users", json={"email": "busy@example.test", "password": TEST_PASSWORD})
        assert time.monotonic() - started < 2.0  # no waiting behind the queue
        for response in (login, register):
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"] == {
                "code": "SERVICE_BUSY",
                "message": "The service is busy. Please retry shortly.",
                "details": {"retry_after_seconds": 1},
            }
    finally:
        release.set()
        await asyncio.gather(*held)
    login = await client.post("/api/v1/auth/login", json={"email": user.email, "password": TEST_PASSWORD})
    assert login.status_code == 200


async def test_a_wrong_password_takes_the_same_time_for_bcrypt_argon2_and_unknown_accounts(client, conn):
    legacy = bcrypt.hashpw(TEST_PASSWORD.encode(), bcrypt.gensalt(rounds=12)).decode()  # as seed data has it
    modern = passwords.hash_sync(TEST_PASSWORD)
    samples = 7  # below the throttle's 5 failures per email: one email per attempt
    emails = {
        "bcrypt": [await _insert_user(conn, legacy) for _ in range(samples)],
        "argon2": [await _insert_user(conn, modern) for _ in range(samples)],
        "unknown": [f"nobody-{n}@example.test" for n in range(samples)],
    }
    await client.post("/api/v1/auth/login", json={"email": "warm-up@example.test", "password": "Wrong!Pass1"})
    durations: dict[str, list[float]] = {kind: [] for kind in emails}
    for attempt in range(samples):  # interleaved, so the machine's load drifts equally over all three
        for kind, addresses in emails.items():
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/auth/login", json={"email": addresses[attempt], "password": "Wrong!Pass1"}
            )
            durations[kind].append(time.perf_counter() - started)
            assert response.status_code == 401
    medians = {kind: statistics.median(values) for kind, values in durations.items()}
    assert max(medians.values()) <= 1.10 * min(medians.values()), medians

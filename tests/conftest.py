"""Shared fixtures: a real PostgreSQL cluster for the session, a fresh database and app per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import asyncpg
import pytest

from server.app import create_app
from server.auth import passwords
from server.auth.tokens import issue_access
from server.config import Settings
from tests.support.client import AppClient
from tests.support.database import TestDatabases

TEST_KEY = "test-signing-key-0123456789abcdef0123456789"
TEST_PASSWORD = "Str0ng!Pass"


@pytest.fixture(scope="session")
def databases() -> TestDatabases:
    dbs = TestDatabases()
    dbs.start()
    yield dbs
    dbs.stop()


@pytest.fixture
def database_url(databases: TestDatabases) -> str:
    name = databases.create()
    yield databases.url(name)
    databases.drop(name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        oauth_hash_key=TEST_KEY,
        purchase_job_enabled=False,
        db_pool_min_size=1,
        db_pool_max_size=10,
        log_format="json",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AppClient]:
    app_client = AppClient(create_app(settings))
    await app_client.start()
    yield app_client
    await app_client.stop()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, for arranging data and checking invariants."""
    from server.db import parse_database_url

    connection = await asyncpg.connect(**parse_database_url(database_url))
    yield connection
    await connection.close()


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    role: str
    token: str


_HASH_CACHE: dict[str, str] = {}


def known_hash(password: str = TEST_PASSWORD) -> str:
    if password not in _HASH_CACHE:
        _HASH_CACHE[password] = passwords.hash_sync(password)
    return _HASH_CACHE[password]


@pytest.fixture
def make_account(conn: asyncpg.Connection, settings: Settings) -> Callable[..., Awaitable[Account]]:
    """Insert an active user (and wallet) straight into the database and mint an access token."""

    async def make(role: str = "user", email: str | None = None, active: bool = True) -> Account:
        user_id = str(uuid.uuid4())
        email = email or f"{role}-{user_id[:8]}@example.test"
        await conn.execute(
            "INSERT INTO users (id, email, hashed_password, role, active) VALUES ($1, $2, $3, $4, $5)",
            user_id,
            email,
            known_hash(),
            role,
            active,
        )
        await conn.execute("INSERT INTO wallets (user_id) VALUES ($1)", user_id)
        token = issue_access(settings.oauth_hash_key, user_id, role, settings.access_token_ttl_minutes)
        return Account(user_id, email, role, token)

    return make


@pytest.fixture
async def user(make_account) -> Account:
    return await make_account("user")


@pytest.fixture
async def admin(make_account) -> Account:
    return await make_account("admin")


def with_settings(settings: Settings, **changes) -> Settings:
    return replace(settings, **changes)

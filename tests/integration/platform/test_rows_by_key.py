"""Caller lookups of requests that run together share one statement, and each request still gets
its own row (server.db.RowsByKey, used by server.auth.guard for every authenticated request)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from server import db
from server.auth.guard import caller_lookup

CALLERS_SQL = "SELECT u.id, u.email FROM users u WHERE u.id = ANY($1::uuid[])"


class CountedRowsByKey(db.RowsByKey):
    """Counts the statements it sends (the pool's own counters also see asyncpg's type introspection)."""

    statements = 0

    async def _read(self, waiting):
        self.statements += 1
        await super()._read(waiting)


async def test_lookups_of_one_pass_share_one_statement_and_each_gets_its_own_row(client, make_account):
    accounts = [await make_account() for _ in range(12)]
    unknown = str(uuid.uuid4())
    lookup = CountedRowsByKey(CALLERS_SQL)
    keys = [a.id for a in accounts] + [accounts[0].id, accounts[0].id, unknown]
    rows = await asyncio.gather(*(lookup.fetchrow(key) for key in keys))
    assert lookup.statements == 1
    for key, row in zip(keys, rows):
        if key == unknown:
            assert row is None
        else:
            assert str(row["id"]) == key
            assert row["email"] == next(a.email for a in accounts if a.id == key)


async def test_a_lone_lookup_is_answered_without_waiting_for_company(client, user):
    lookup = db.RowsByKey(CALLERS_SQL)
    row = await asyncio.wait_for(lookup.fetchrow(user.id), timeout=10)
    assert str(row["id"]) == user.id


async def test_lookups_of_later_passes_get_statements_of_their_own(client, make_account):
    first, second = await make_account(), await make_account()
    lookup = CountedRowsByKey(CALLERS_SQL)
    assert str((await lookup.fetchrow(first.id))["id"]) == first.id
    assert str((await lookup.fetchrow(second.id))["id"]) == second.id
    assert lookup.statements == 2


async def test_a_failing_statement_fails_every_lookup_that_shared_it(client, user):
    lookup = db.RowsByKey("SELECT id FROM no_such_table WHERE id = ANY($1::uuid[])")
    results = await asyncio.gather(*(lookup.fetchrow(user.id) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, asyncpg.UndefinedTableError) for result in results), results
    # The lookup is usable again afterwards: nothing of the failed pass stays queued.
    good = db.RowsByKey(CALLERS_SQL)
    assert str((await good.fetchrow(user.id))["id"]) == user.id


async def test_a_cancelled_lookup_leaves_the_others_of_its_pass_answered(client, make_account):
    kept, dropped = await make_account(), await make_account()
    lookup = db.RowsByKey(CALLERS_SQL)
    keep = asyncio.ensure_future(lookup.fetchrow(kept.id))
    drop = asyncio.ensure_future(lookup.fetchrow(dropped.id))
    # Runs after both tasks queued their keys and before the pass's statement is sent.
    asyncio.get_running_loop().call_soon(drop.cancel)
    assert str((await keep)["id"]) == kept.id
    with pytest.raises(asyncio.CancelledError):
        await drop


async def test_concurrent_requests_of_many_users_each_see_their_own_identity(client, make_account, monkeypatch):
    accounts = [await make_account() for _ in range(20)] * 2
    lookup = caller_lookup()
    sent: list[int] = []
    read = lookup._read

    async def counted(waiting):
        sent.append(len(waiting))
        await read(waiting)

    monkeypatch.setattr(lookup, "_read", counted)
    responses = await asyncio.gather(*(client.get("/api/v1/users/me", token=a.token) for a in accounts))
    assert [r.status_code for r in responses] == [200] * len(accounts)
    assert [r.json()["id"] for r in responses] == [a.id for a in accounts]
    assert len(sent) < len(accounts), sent  # they shared statements


async def test_endpoints_reading_the_same_columns_share_one_lookup():
    assert caller_lookup() is caller_lookup()
    assert caller_lookup("SELECT 1 AS one") is not caller_lookup()

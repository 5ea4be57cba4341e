"""The job in real server processes: three workers racing admins, and a database outage."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from devtools.local_postgres import LocalPostgres
from server import db_migrations
from server.auth.tokens import issue_access
from server.db import parse_database_url
from server.wallets.consistency import find_mismatches
from tests.conftest import TEST_KEY, known_hash
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.slow

TRANSITIONS_FROM_PENDING = ("PURCHASE_CONFIRMED", "PURCHASE_CONFIRMED_BY_ADMIN", "PURCHASE_REJECTED")


async def _arrange(database_url: str, purchases: int, users: int = 10) -> dict:
    """Users, an admin, a normal and a bank-rejected merchant, and `purchases` pending purchases
    with their pending transactions and wallet credits (consistent from the start)."""
    conn = await asyncpg.connect(**parse_database_url(database_url))
    try:
        admin_id = uuid.uuid4()
        user_ids = [uuid.uuid4() for _ in range(users)]
        for index, user_id in enumerate([admin_id, *user_ids]):
            await conn.execute(
                "INSERT INTO users (id, email, hashed_password, role) VALUES ($1, $2, $3, $4)",
                user_id,
                f"u{index}-{user_id.hex[:6]}@example.test",
                known_hash(),
                "admin" if user_id == admin_id else "user",
            )
            await conn.execute("INSERT INTO wallets (user_id) VALUES ($1)", user_id)
        merchants, offers = [uuid.uuid4(), uuid.uuid4()], [uuid.uuid4(), uuid.uuid4()]
        for merchant_id, offer_id in zip(merchants, offers):
            await conn.execute(
                "INSERT INTO merchants (id, name, default_cashback_percentage) VALUES ($1, $2, 5)",
                merchant_id,
                f"M-{merchant_id.hex[:8]}",
            )
            await conn.execute(
                "INSERT INTO offers (id, merchant_id, percentage, start_date, end_date, monthly_cap_per_user) "
                "VALUES ($1, $2, 5, current_date - 1, current_date + 30, 100000)",
                offer_id,
                merchant_id,
            )
        await _add_purchases(conn, user_ids, merchants, offers, purchases)
        return {"admin_id": str(admin_id), "user_ids": user_ids, "merchants": merchants, "offers": offers}
    finally:
        await conn.close()


async def _add_purchases(conn, user_ids, merchants, offers, count, due_in_seconds: float = 0.0) -> list[uuid.UUID]:
    ids = []
    async with conn.transaction():
        for index in range(count):
            purchase_id, user_id = uuid.uuid4(), user_ids[index % len(user_ids)]
            which = 1 if index % 5 == 0 else 0  # every fifth purchase is at the bank-rejected merchant
            await conn.execute(
                "INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, "
                "cashback_amount, next_verification_at) VALUES ($1, $2, $3, $4, $5, 20.00, 'EUR', 1.00, "
                "now() + make_interval(secs => $6))",
                purchase_id,
                f"job-{purchase_id}",
                user_id,
                merchants[which],
                offers[which],
                due_in_seconds,
            )
            await conn.execute(
                "INSERT INTO cashback_transactions (user_id, purchase_id, amount, status) "
                "VALUES ($1, $2, 1.00, 'pending')",
                user_id,
                purchase_id,
            )
            await conn.execute(
                "UPDATE wallets SET pending_balance = pending_balance + 1.00 WHERE user_id = $1", user_id
            )
            ids.append(purchase_id)
    return ids


async def _wait_until(conn, sql: str, expected, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await conn.fetchval(sql)
        if value == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{sql} is {value}, expected {expected} after {timeout}s")


def _job_env(rejection_merchant, interval="0.2") -> dict[str, str]:
    return {
        "PURCHASE_JOB_ENABLED": "true",
        "PURCHASE_CONFIRMATION_INTERVAL_SECONDS": interval,
        "PURCHASE_MAX_VERIFICATION_ATTEMPTS": "2",
        "PURCHASE_JOB_BATCH_SIZE": "10",  # several batches per tick, so the processes race
        "REJECTION_MERCHANT_ID": str(rejection_merchant),
        "DB_POOL_MAX_SIZE": "5",
    }


async def test_three_job_processes_racing_admins_transition_each_purchase_once(databases):
    name = databases.create("jobs")
    database_url = databases.url(name)
    servers: list[ServerProcess] = []
    conn = None
    try:
        arranged = await _arrange(database_url, purchases=300)
        env = _job_env(arranged["merchants"][1])
        servers = [ServerProcess(database_url, TEST_KEY, env=env) for _ in range(3)]
        for server in servers:
            server.start(wait_ready=False)
        servers[0].wait_for("/health/ready", 200, timeout=120)  # three start at once on a busy machine
        conn = await asyncpg.connect(**parse_database_url(database_url))
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM purchases ORDER BY created_at DESC, id")]
        random.Random(4).shuffle(ids)
        token = issue_access(TEST_KEY, arranged["admin_id"], "admin", 15)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:

            async def admin_action(index, purchase_id):
                server = servers[0]
                if index % 2 == 0:
                    return "confirm", await http.post(f"{server.url}/api/v1/purchases/{purchase_id}/confirmation")
                return "reverse", await http.patch(f"{server.url}/api/v1/purchases/{purchase_id}/reverse")

            semaphore = asyncio.Semaphore(16)

            async def bounded(index, purchase_id):
                async with semaphore:
                    return await admin_action(index, purchase_id)

            results = await asyncio.gather(*(bounded(i, pid) for i, pid in enumerate(ids[:200])))
        for server in servers[1:]:
            server.wait_for("/health/ready", 200, timeout=120)
        await _wait_until(conn, "SELECT count(*) FROM purchases WHERE status = 'pending'", 0, timeout=60)
        statuses = [(kind, response.status_code) for kind, response in results]
        assert all(status < 500 for _, status in statuses), statuses
        for server in servers:
            assert server.stop() == 0, server.log_tail()
        rows = await conn.fetch(
            "SELECT p.id, p.status, "
            "count(a.id) FILTER (WHERE a.action = ANY($1::text[]) "
            "  OR (a.action = 'PURCHASE_REVERSED' AND a.details->>'prior_status' = 'pending')) AS from_pending, "
            "count(a.id) FILTER (WHERE a.action = 'PURCHASE_REVERSED') AS reversals "
            "FROM purchases p LEFT JOIN audit_logs a ON a.resource_id = p.id GROUP BY p.id, p.status",
            list(TRANSITIONS_FROM_PENDING),
        )
        assert len(rows) == 300
        assert all(row["from_pending"] == 1 for row in rows), [dict(r) for r in rows if r["from_pending"] != 1]
        assert all(row["reversals"] <= 1 for row in rows)
        confirmed_by_admin = sum(1 for kind, status in statuses if kind == "confirm" and status == 200)
        reversed_by_admin = sum(1 for kind, status in statuses if kind == "reverse" and status == 200)
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'PURCHASE_CONFIRMED_BY_ADMIN'")
            == confirmed_by_admin
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'PURCHASE_REVERSED'")
            == reversed_by_admin
        )
        assert await conn.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'PURCHASE_CONFIRMED'") > 0
        assert await conn.fetchval("SELECT count(*) FROM purchases WHERE status = 'rejected'") > 0
        # Several processes really did the work.
        workers = sum(
            1
            for server in servers
            if any(
                r.get("event") == "job.tick"
                and r.get("confirmed", 0) + r.get("rejected", 0) + r.get("soft_failed", 0) > 0
                for r in server.log_records()
            )
        )
        assert workers >= 2
        assert await find_mismatches(conn) == []
    finally:
        for server in servers:
            server.stop()
        if conn is not None:
            await conn.close()
        databases.drop(name)


async def test_job_survives_a_database_outage_and_finishes_the_work():
    # A cluster of its own, outside pytest's tmp_path (which concurrent pytest runs may prune), so
    # stopping it disturbs no other test.
    base = Path(tempfile.mkdtemp(prefix="cnb-outage-"))
    os.chmod(base, 0o755)
    cluster = LocalPostgres(base / "pg")
    cluster.start()
    server = None
    try:
        cluster.create_database("outage")
        database_url = cluster.dsn("outage")
        await db_migrations.upgrade(database_url)
        arranged = await _arrange(database_url, purchases=5, users=2)
        server = ServerProcess(database_url, TEST_KEY, env=_job_env(uuid.uuid4(), interval="0.3")).start(timeout=120)
        conn = await asyncpg.connect(**parse_database_url(database_url))
        await _wait_until(conn, "SELECT count(*) FROM purchases WHERE status = 'pending'", 0, timeout=30)
        # More work, due while the database is down.
        later = await _add_purchases(
            conn, arranged["user_ids"], arranged["merchants"], arranged["offers"], 5, due_in_seconds=1.0
        )
        await conn.close()
        errors_before = len(_tick_errors(server))
        cluster.stop("fast")
        assert not cluster.is_running()
        stopped_at = time.monotonic()

        def outage_seen() -> bool:  # down for several seconds, with failed ticks logged all along
            return len(_tick_errors(server)) >= errors_before + 5 and time.monotonic() - stopped_at >= 4

        while not outage_seen() and time.monotonic() < stopped_at + 40:
            await asyncio.sleep(0.1)
        assert outage_seen(), server.log_tail()
        assert server.process.poll() is None  # still running, still ticking
        cluster.start()
        conn = await asyncpg.connect(**parse_database_url(database_url))
        try:
            await _wait_until(conn, "SELECT count(*) FROM purchases WHERE status = 'pending'", 0, timeout=30)
            assert await conn.fetchval(
                "SELECT count(*) FROM audit_logs WHERE resource_id = ANY($1::uuid[])", later
            ) == len(later)
            assert await find_mismatches(conn) == []
        finally:
            await conn.close()
        server.wait_for("/health/ready", 200)
        assert server.stop() == 0
    finally:
        if server is not None:
            server.stop()
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _tick_errors(server: ServerProcess) -> list[dict]:
    return [r for r in server.log_records() if r.get("event") == "job.tick" and r.get("level") == "ERROR"]


# Due pending purchases for the arranged users at the first merchant, credited 1.00 each, with their
# transactions and wallet credits, in three statements.
MANY_PURCHASES_SQL = """
WITH made AS (
    INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount,
                           created_at, next_verification_at)
    SELECT 'kill-' || i, ($1::uuid[])[1 + i % cardinality($1::uuid[])], $2::uuid, $3::uuid, 20.00, 'EUR', 1.00,
           now() - make_interval(secs => ($4 - i) * 0.001), now()
    FROM generate_series(1, $4::int) AS i
    RETURNING id, user_id, cashback_amount
), credited AS (
    INSERT INTO cashback_transactions (user_id, purchase_id, amount, status)
    SELECT user_id, id, cashback_amount, 'pending' FROM made RETURNING user_id, amount
)
UPDATE wallets AS w SET pending_balance = w.pending_balance + c.total
FROM (SELECT user_id, sum(amount) AS total FROM credited GROUP BY user_id) AS c WHERE c.user_id = w.user_id
"""


async def test_a_job_process_killed_mid_tick_leaves_no_half_settled_batch(databases):
    name = databases.create("jobkill")
    database_url = databases.url(name)
    servers: list[ServerProcess] = []
    conn = None
    try:
        arranged = await _arrange(database_url, purchases=0)
        conn = await asyncpg.connect(**parse_database_url(database_url))
        await conn.execute(
            MANY_PURCHASES_SQL, arranged["user_ids"], arranged["merchants"][0], arranged["offers"][0], 4000
        )
        env = {**_job_env(arranged["merchants"][1]), "PURCHASE_JOB_BATCH_SIZE": "50"}
        first = ServerProcess(database_url, TEST_KEY, env=env)
        servers.append(first)
        first.start(timeout=120)
        settled = "SELECT count(*) FROM purchases WHERE status = 'confirmed'"
        deadline = time.monotonic() + 60
        while await conn.fetchval(settled) < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        first.process.kill()  # SIGKILL while it is settling batches: no chance to finish one
        first.process.wait(timeout=30)
        confirmed = await conn.fetchval(settled)
        assert 0 < confirmed < 4000 and confirmed % 50 == 0  # whole batches of 50, never part of one
        # What committed is whole: each confirmed purchase has its audit row, and every wallet
        # matches its purchases.
        assert await conn.fetchval("SELECT count(*) FROM audit_logs") == confirmed
        assert await find_mismatches(conn) == []
        second = ServerProcess(database_url, TEST_KEY, env=env)
        servers.append(second)
        second.start(timeout=120)
        await _wait_until(conn, "SELECT count(*) FROM purchases WHERE status = 'pending'", 0, timeout=120)
        per_purchase = await conn.fetch(
            "SELECT count(a.id) AS audits FROM purchases p LEFT JOIN audit_logs a ON a.resource_id = p.id GROUP BY p.id"
        )
        assert len(per_purchase) == 4000 and {r["audits"] for r in per_purchase} == {1}
        assert await find_mismatches(conn) == []
        assert second.stop() == 0
    finally:
        for server in servers:
            server.stop()
        if conn is not None:
            await conn.close()
        databases.drop(name)

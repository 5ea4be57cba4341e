"""The verification job alone on a backlog (issue #24), run on demand: how fast one tick clears it.

    .venv/bin/python bench/job_alone.py [--purchases 100000] [--users 1000] [--seconds 600] [--profile]

A throwaway cluster writing as production does (fsync, synchronous commit), migrated; `--users`
users with wallets, one merchant with an offer, and `--purchases` due pending purchases spread over
them, each credited 1.00 (pending transaction, wallet pending balance and monthly totals consistent),
every tenth at a merchant the bank rejects after one attempt, every twentieth user with auto-confirm
off. One tick runs in this process through the service's own pool, and the script prints purchases
per second, the time for the backlog, and the wallet recount. A tick still running after
`--seconds` is cancelled, and the rate is what it settled by then. `--profile` adds cProfile's top
functions by cumulative time. No API load runs: bench/backlog.py measures the job under the mix.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402

from devtools.local_postgres import PRODUCTION_DURABILITY, LocalPostgres  # noqa: E402
from server import db, db_migrations  # noqa: E402
from server.config import Settings  # noqa: E402
from server.db import parse_database_url  # noqa: E402
from server.jobs import verification  # noqa: E402
from server.wallets.consistency import find_mismatches  # noqa: E402

ARRANGE_SQL = """
WITH shops AS (
    INSERT INTO merchants (id, name, default_cashback_percentage)
    VALUES ('00000000-0000-0000-0000-0000000000a1', 'Job bench shop', 5),
           ('00000000-0000-0000-0000-0000000000b2', 'Job bench bank-rejected shop', 5)
    RETURNING id
)
INSERT INTO offers (merchant_id, percentage, start_date, end_date, monthly_cap_per_user)
SELECT id, 5, current_date - 1, current_date + 30, 1000000 FROM shops;

INSERT INTO users (id, email, hashed_password, role)
SELECT ('00000000-0000-0000-0001-' || lpad(to_hex(u), 12, '0'))::uuid, 'job' || u || '@example.test', 'x', 'user'
FROM generate_series(1, {users}) AS u;
INSERT INTO wallets (user_id) SELECT id FROM users;

-- Purchases 1 ms apart, as a backlog accumulates while the job is down.
WITH backlog AS (
    INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount,
                           created_at, next_verification_at)
    SELECT 'job-' || i,
           ('00000000-0000-0000-0001-' || lpad(to_hex(1 + i % {users}), 12, '0'))::uuid,
           o.merchant_id, o.id, 20.00, 'EUR', 1.00, at, at
    FROM generate_series(1, {purchases}) AS i
    JOIN offers AS o ON o.merchant_id = CASE WHEN i % 10 = 0 THEN '00000000-0000-0000-0000-0000000000b2'::uuid
                                             ELSE '00000000-0000-0000-0000-0000000000a1'::uuid END,
         LATERAL (SELECT now() - make_interval(secs => ({purchases} - i) * 0.001) AS at) AS t
    RETURNING id, user_id, cashback_amount
)
INSERT INTO cashback_transactions (user_id, purchase_id, amount, status)
SELECT user_id, id, cashback_amount, 'pending' FROM backlog;

UPDATE wallets AS w SET pending_balance = s.total
FROM (SELECT user_id, sum(cashback_amount) AS total FROM purchases GROUP BY user_id) AS s
WHERE s.user_id = w.user_id;

INSERT INTO feature_flags (key, enabled, scope_type, scope_id)
SELECT 'purchase_auto_confirm', false, 'user', ('00000000-0000-0000-0001-' || lpad(to_hex(u), 12, '0'))::uuid
FROM generate_series(20, {users}, 20) AS u;
"""


async def arrange(url: str, purchases: int, users: int) -> float:
    conn = await asyncpg.connect(**parse_database_url(url))
    try:
        started = time.monotonic()
        await conn.execute(ARRANGE_SQL.format(purchases=purchases, users=users))
        await conn.execute("VACUUM ANALYZE")
        return time.monotonic() - started
    finally:
        await conn.close()


# What a tick has settled: confirmed or rejected, or pushed past the tick's start.
SETTLED_SQL = "SELECT count(*) FROM purchases WHERE status <> 'pending' OR next_verification_at > $1"


async def clear(url: str, profile: bool, seconds: float) -> tuple[int, float, str]:
    """Run one tick, for at most `seconds`; returns how many it settled, in how long, and its counts."""
    settings = Settings(
        database_url=url,
        oauth_hash_key="job-bench-signing-key-0123456789abcdef",
        rejection_merchant_id="00000000-0000-0000-0000-0000000000b2",
        purchase_max_verification_attempts=1,
    )
    await db.init_db(url, 1, 4, slow_query_ms=10_000)
    profiler = cProfile.Profile() if profile else None
    try:
        tick_started = await db.fetchval("SELECT now()")
        started = time.monotonic()
        if profiler:
            profiler.enable()
        try:
            result = await asyncio.wait_for(verification.run_tick(settings), seconds)
            counts = (
                f"confirmed {result.confirmed:,}, rejected {result.rejected:,}, deferred {result.deferred:,}, "
                f"soft-failed {result.soft_failed:,}, failed {result.failed:,}"
            )
        except TimeoutError:
            counts = f"cancelled after {seconds:.0f} s"
        if profiler:
            profiler.disable()
        elapsed = time.monotonic() - started
        settled = await db.fetchval(SETTLED_SQL, tick_started)
    finally:
        await db.close_db()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return settled, elapsed, counts


async def recount(url: str) -> int:
    conn = await asyncpg.connect(**parse_database_url(url))
    try:
        return len(await find_mismatches(conn))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnb-job-bench-") as workdir:
        cluster = LocalPostgres(Path(workdir) / "pg")
        cluster.start(PRODUCTION_DURABILITY)
        try:
            cluster.create_database("jobs")
            url = cluster.dsn("jobs")
            asyncio.run(db_migrations.upgrade(url))
            arrange_s = asyncio.run(arrange(url, args.purchases, args.users))
            settled, seconds, counts = asyncio.run(clear(url, args.profile, args.seconds))
            mismatches = asyncio.run(recount(url))
        finally:
            cluster.destroy()
    print(
        f"job alone: {args.purchases:,} due purchases over {args.users:,} users (arranged in {arrange_s:.1f} s); "
        f"one tick settled {settled:,} in {seconds:.1f} s = {settled / seconds:,.0f} purchases/s ({counts}); "
        f"wallet recount mismatches: {mismatches}"
    )


if __name__ == "__main__":
    main()

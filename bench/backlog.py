"""The verification job clearing a backlog (issue #24): 100,000 pending purchases become due at
once while the mixed API load runs; how long until none of them is pending, and the API's p99
meanwhile.

The instances run the job as production does (PURCHASE_JOB_ENABLED, one loop per instance), with
PURCHASE_CONFIRMATION_INTERVAL_SECONDS=1 so an idle instance notices new due work within a second
rather than a minute; a tick with work keeps claiming until nothing is due, so the interval does not
pace the clearing itself. The clock starts when the instances with the job are started (the first
tick runs at start-up), with the backlog already in place. The backlog is inserted in one set-based
statement (purchase and pending transaction: API.md §4.5; a 0.00 credit leaves the wallet as it is),
for the heavy user; the API load ingests for the bench users, whose new purchases the job confirms
as well. A purchase is due as soon as it is recorded, and the scenarios run without the job, so
the job first catches up with what they ingested (catch_up), as production's job keeps up with
ingestion; the backlog is what accumulates while the job is down. The line says how many purchases
were due ahead of the backlog all the same.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

JOB_ENV = {"PURCHASE_JOB_ENABLED": "true", "PURCHASE_CONFIRMATION_INTERVAL_SECONDS": "1"}
BACKLOG = 100_000
LIMIT_SECONDS = 300.0

# Cashback 0.00, as when the monthly cap is already reached (API.md §4.1): a credited amount would make
# the cap-totals trigger update one (user, offer, month) row 100,000 times in one transaction, each
# update walking the row's earlier versions (minutes, quadratic). Confirming does the same work either
# way: the purchase, its transaction, the wallet and the audit row. The purchases arrived 1 ms apart,
# as a backlog accumulates while the job is down: with one shared created_at every claim (ORDER BY
# created_at, id) would sort the whole backlog, which is a cost of this insert, not of the job.
INSERT_SQL = """
WITH offer AS (
    SELECT o.id, o.merchant_id FROM offers o WHERE o.merchant_id = $2::uuid AND o.active
), backlog AS (
    INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount,
                           created_at, next_verification_at)
    SELECT $3 || i, $1::uuid, offer.merchant_id, offer.id, 10.00, 'EUR', 0.00, at, at
    FROM generate_series(1, $4::int) AS i, offer,
         LATERAL (SELECT now() - make_interval(secs => ($4 - i) * 0.001) AS at) AS t
    RETURNING id, cashback_amount
)
INSERT INTO cashback_transactions (user_id, purchase_id, amount, status)
SELECT $1::uuid, id, cashback_amount, 'pending' FROM backlog
"""
# Through the owner's (user_id, status) index: a LIKE on a parameter cannot use the external_id
# index, and a scan of 10 million rows every poll would load the machine being measured.
PENDING_SQL = """
SELECT count(*) FROM purchases WHERE user_id = $1::uuid AND status = 'pending' AND external_id LIKE $2 || '%'
"""
# Every purchase the job will find due, through its partial index (ix_purchases_due). A purchase is
# due from the moment it is recorded, so after the scenarios every purchase they ingested is due too,
# and the job, oldest first, confirms those before the backlog.
DUE_SQL = "SELECT count(*) FROM purchases WHERE status = 'pending' AND next_verification_at <= now()"


def _on_connection(database_url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(connection)` on one connection to the bench database, closed afterwards."""
    import asyncpg

    from server.db import parse_database_url

    async def run() -> T:
        conn = await asyncpg.connect(**parse_database_url(database_url))
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


async def _until_none(conn: Any, deadline: float, sql: str, *args: Any) -> tuple[int, int]:
    """Count with `sql` every 0.5 s until none is left or time.monotonic() passes `deadline`;
    returns the first count and the last."""
    first = left = int(await conn.fetchval(sql, *args))
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # the polling period
        left = int(await conn.fetchval(sql, *args))
    return first, left


def insert(database_url: str, user_id: str, merchant_id: str, count: int = BACKLOG) -> tuple[str, float]:
    """Insert `count` due pending purchases; returns their external_id prefix and the seconds it took."""
    prefix = f"backlog-{time.time_ns()}-"
    started = time.monotonic()
    _on_connection(database_url, lambda conn: conn.execute(INSERT_SQL, user_id, merchant_id, prefix, count))
    return prefix, time.monotonic() - started


def due(database_url: str) -> int:
    """How many pending purchases are due now, the backlog's and any others."""
    return int(_on_connection(database_url, lambda conn: conn.fetchval(DUE_SQL)))


def catch_up(database_url: str, limit_seconds: float = LIMIT_SECONDS) -> tuple[int, int, float]:
    """Wait, while instances with the job run, until no purchase is due (at most `limit_seconds`).
    Returns how many were due at first, how many are left, and the seconds it took."""
    started = time.monotonic()
    first, left = _on_connection(database_url, lambda conn: _until_none(conn, started + limit_seconds, DUE_SQL))
    return first, left, time.monotonic() - started


def clear(database_url: str, wrk_argv: list[str], user_id: str, prefix: str, job_started: float) -> dict:
    """Run `wrk_argv` (its script ends with the BENCH report) until none of the purchases under
    `prefix` is pending (at most LIMIT_SECONDS after `job_started`, a time.monotonic() taken when
    the job's instances were started), stop it with SIGINT so it reports that window, and return
    the figures with the seconds from `job_started` to cleared."""
    deadline = job_started + LIMIT_SECONDS
    with tempfile.TemporaryFile("w+") as report:
        load = subprocess.Popen(wrk_argv, stdout=report, stderr=subprocess.STDOUT, text=True)
        try:
            _, left = _on_connection(
                database_url, lambda conn: _until_none(conn, deadline, PENDING_SQL, user_id, prefix)
            )
            clear_s = time.monotonic() - job_started
        finally:
            load.send_signal(signal.SIGINT)
            try:
                load.wait(timeout=30)
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait()
        report.seek(0)
        output = report.read()
    return {**_figures(output), "clear_s": clear_s, "left_pending": left}


def _figures(output: str) -> dict:
    import json

    for line in output.splitlines():
        if line.startswith("BENCH "):
            figures = json.loads(line[len("BENCH ") :])
            figures["rps"] = figures["requests"] / figures["seconds"] if figures["seconds"] else 0.0
            return figures
    raise RuntimeError(f"wrk gave no figures: {output}")


def line(row: dict) -> str:
    cleared = "cleared" if not row["left_pending"] else f"NOT cleared ({row['left_pending']:,} left)"
    verdict = "met" if not row["left_pending"] and row["clear_s"] < 60 else "NOT met"
    ahead = row["due"] - row["backlog"]
    # Cleared, the backlog went last (oldest first), so the job went through every purchase due at the start.
    processed = row["due"] if not row["left_pending"] else row["backlog"] - row["left_pending"]
    return (
        f"job backlog: {row['backlog']:,} due purchases (inserted in {row['insert_s']:.1f} s) behind "
        f"{ahead:,} due before them, {cleared} "
        f"{row['clear_s']:.1f} s after the instances with the job started "
        f"({processed / max(row['clear_s'], 0.001):,.0f} processed/s; "
        f"target < 60 s: {verdict}); "
        f"meanwhile mixed at c=64: {row['rps']:.0f} req/s, p50 {row['p50_us'] / 1000:.2f} ms, "
        f"p99 {row['p99_us'] / 1000:.2f} ms, errors {row['errors']}"
    )

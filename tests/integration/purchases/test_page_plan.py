"""A user's first page reads its ten rows, not the user's whole history, even when the planner's
statistics say the user has almost none (a history that grew after the last ANALYZE): the bench's
mix ingests thousands of purchases into a few users between two autovacuum naps, and its cost per
request grew with every pass (docs/adr/0035-a-user-s-page-cuts-its-ids-first.md)."""

from __future__ import annotations

import json
import re
import uuid

from server import db
from tests.integration.purchases.helpers import ingest, make_merchant, make_shop

BEFORE = 1
GROWN = 3000


async def _bulk(conn, account, merchant: str, prefix: str, n: int) -> None:
    """n purchases of one user in one statement, through record_purchase as ingestion writes them."""
    recorded = await conn.fetchval(
        "SELECT count(*) FROM generate_series(1, $4::int) AS g,"
        " record_purchase($1, $2 || g, $3, 25.00, 'EUR') AS r WHERE r.outcome = 'recorded'",
        uuid.UUID(account.id),
        prefix,
        uuid.UUID(merchant),
        n,
    )
    assert recorded == n


async def _buffers(conn, sql: str, user_id: str, offset: int, limit: int) -> int:
    """Shared buffers one execution of the page's statement touches, planned with its values as
    the server's first executions are (a custom plan)."""
    params = (await conn.prepare(sql)).get_parameters()
    limit_at = {int(n) for n in re.findall(r"LIMIT \$(\d+)", sql)}
    offset_at = {int(n) for n in re.findall(r"OFFSET \$(\d+)", sql)}
    args: list[object] = []
    for number, param in enumerate(params, start=1):
        if param.name == "uuid":
            args.append(uuid.UUID(user_id))
        else:
            assert number in limit_at | offset_at, (number, param.name, sql)
            args.append(limit if number in limit_at else offset)
    plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args))[0]["Plan"]
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


async def test_a_first_page_reads_its_rows_not_a_history_that_grew_after_analyze(
    client, conn, user, make_account, monkeypatch
):
    for table in ("purchases", "cashback_transactions"):  # the statistics stay as ANALYZE left them
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    merchant, _ = await make_shop(conn)
    for _ in range(30):  # a catalogue the size of the bench's, which the planner weighs in its joins
        await make_merchant(conn)
    other = await make_account()
    await _bulk(conn, other, merchant, "other-", 4000)
    for _ in range(BEFORE):
        assert (await ingest(client, user, merchant, "20.00")).status_code == 201
    await conn.execute("ANALYZE")
    await _bulk(conn, user, merchant, "grown-", GROWN)

    seen: list[str] = []
    record = db.QUERY_STATS.record
    monkeypatch.setattr(db.QUERY_STATS, "record", lambda sql, *rest: (seen.append(sql), record(sql, *rest)))
    response = await client.get("/api/v1/users/me/purchases", token=user.token, params={"limit": 10})
    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 10 and body["pagination"]["total"] == GROWN + BEFORE
    (page,) = [sql for sql in seen if "cashback_transactions" in sql]

    # Ten rows and their joins: a few index pages and heap pages each. The whole history joined
    # and sorted touches every one of the user's purchases and its transaction (over 4 x 3,000).
    assert await _buffers(conn, page, user.id, 0, 10) < 200

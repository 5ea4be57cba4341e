"""The monthly cap totals checked and rebuilt: server/purchases/cap_totals.py, `check-wallets` and
`rebuild-cap-totals` (deploy/ops/cap_totals.py).

Drift is made the only ways it can happen: writes to cashback_monthly_totals by hand, and purchase
writes with session_replication_role = replica (no triggers)."""

import asyncio
import importlib.util
import subprocess
import sys
import uuid
from datetime import date
from decimal import Decimal

import asyncpg
import pytest

from server import db_migrations
from server.db import parse_database_url
from server.purchases.cap_totals import (
    REBUILD_INSERT_SQL,
    count_rebuild_rows,
    find_count_mismatches,
    find_total_mismatches,
    rebuild,
)
from server.purchases.rules import sql_file
from tests.integration.purchases.helpers import (
    assert_consistent,
    assert_counts_match_purchases,
    assert_totals_match_purchases,
    ingest,
    make_shop,
    monthly_total,
    today,
)


def _ops(command: str, *args: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "ENV_FILE": "/dev/null"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", command, *args], capture_output=True, text=True, env=env, timeout=60
    )


async def _totals(conn) -> list[tuple]:
    return [
        tuple(row)
        for row in await conn.fetch(
            "SELECT user_id, offer_id, month, earned FROM cashback_monthly_totals ORDER BY 1, 2, 3"
        )
    ]


async def _two_users_two_offers(client, conn, user, make_account):
    """Purchases through ingestion: user 3.75 + 1.00 at the first offer, 2.50 at the second; other 1.00."""
    first_merchant, first_offer = await make_shop(conn)
    second_merchant, second_offer = await make_shop(conn)
    other = await make_account()
    for account, merchant_id, amount in (
        (user, first_merchant, "75.00"),
        (user, first_merchant, "20.00"),
        (user, second_merchant, "50.00"),
        (other, first_merchant, "20.00"),
    ):
        assert (await ingest(client, account, merchant_id, amount)).status_code == 201
    return other, first_merchant, first_offer, second_offer


async def test_the_rebuild_and_migration_4_apply_the_one_backfill_file():
    path = db_migrations.MIGRATIONS_DIR / db_migrations.APP / "4_20261127000400_monthly_cashback_totals.py"
    spec = importlib.util.spec_from_file_location("migration_4_for_cap_totals", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert REBUILD_INSERT_SQL == sql_file("monthly_totals_backfill")
    assert (await module.upgrade(None)).count(REBUILD_INSERT_SQL) == 1
    assert 'sql_file("monthly_totals_backfill")' in path.read_text()  # by name, not a copy


async def test_a_clean_database_has_no_mismatch(client, conn, user, make_account, database_url):
    assert await find_total_mismatches(conn) == []  # empty
    await _two_users_two_offers(client, conn, user, make_account)
    assert await find_total_mismatches(conn) == []
    result = _ops("check-wallets", database_url=database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every monthly cap total its purchases" in result.stdout
    assert "MISMATCH" not in result.stdout


async def test_a_zero_total_over_nothing_counted_is_not_a_mismatch(client, conn, user, admin):
    merchant_id, offer_id = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "100.00")).json()["id"]
    assert (await client.patch(f"/api/v1/purchases/{purchase_id}/reverse", token=admin.token)).status_code == 200
    assert await conn.fetchval(
        "SELECT earned FROM cashback_monthly_totals WHERE offer_id = $1", uuid.UUID(offer_id)
    ) == Decimal("0.00")
    assert await find_total_mismatches(conn) == []


async def test_every_kind_of_drift_is_reported(client, conn, user, make_account, database_url):
    other, first_merchant, first_offer, second_offer = await _two_users_two_offers(client, conn, user, make_account)
    _, stray_offer = await make_shop(conn)
    month = today().replace(day=1)
    # A total deleted, one altered, one for purchases deleted behind the trigger, one out of nowhere.
    await conn.execute(
        "DELETE FROM cashback_monthly_totals WHERE user_id = $1 AND offer_id = $2",
        uuid.UUID(user.id),
        uuid.UUID(first_offer),
    )
    await conn.execute(
        "UPDATE cashback_monthly_totals SET earned = earned + 1.5 WHERE user_id = $1 AND offer_id = $2",
        uuid.UUID(user.id),
        uuid.UUID(second_offer),
    )
    await conn.execute("SET session_replication_role = replica")
    await conn.execute("DELETE FROM cashback_transactions WHERE user_id = $1", uuid.UUID(other.id))
    await conn.execute("DELETE FROM purchases WHERE user_id = $1", uuid.UUID(other.id))
    await conn.execute("UPDATE wallets SET pending_balance = 0 WHERE user_id = $1", uuid.UUID(other.id))
    await conn.execute("RESET session_replication_role")
    await conn.execute(
        "INSERT INTO cashback_monthly_totals (user_id, offer_id, month, earned) VALUES ($1, $2, $3, 2)",
        uuid.UUID(user.id),
        uuid.UUID(stray_offer),
        date(2020, 2, 1),
    )
    found = {(m.user_id, m.offer_id, m.month): m for m in await find_total_mismatches(conn)}
    assert set(found) == {
        (user.id, first_offer, month),
        (user.id, second_offer, month),
        (other.id, first_offer, month),
        (user.id, stray_offer, date(2020, 2, 1)),
    }
    missing = found[(user.id, first_offer, month)]
    assert (missing.stored, missing.expected) == (None, Decimal("4.75"))
    assert missing.describe() == (
        f"user {user.id}, offer {first_offer}, month {month:%Y-%m}: no total, expected "
        "4.75 (reversing or rejecting these purchases fails with data_corrupted)"
    )
    assert found[(user.id, second_offer, month)].describe().endswith("earned is 4.00, expected 2.50 (difference 1.50)")
    assert (found[(other.id, first_offer, month)].stored, found[(other.id, first_offer, month)].expected) == (
        Decimal("1.00"),
        Decimal("0"),
    )
    assert found[(user.id, stray_offer, date(2020, 2, 1))].describe() == (
        f"user {user.id}, offer {stray_offer}, month 2020-02: earned is 2.00, expected 0.00 (difference 2.00)"
    )

    result = _ops("check-wallets", "--database-url", database_url)
    assert result.returncode == 1
    assert (
        f"MISMATCH monthly cap total user {user.id}, offer {first_offer}, month {month:%Y-%m}: no total, expected 4.75"
    ) in result.stdout
    assert "month 2020-02: earned is 2.00, expected 0.00" in result.stdout
    assert "rebuild-cap-totals" in result.stdout
    # The purchase deleted with the triggers off left its count behind too.
    assert f"MISMATCH purchase count user {other.id}, month {month:%Y-%m}, status pending: n is 1, expected 0" in (
        result.stdout
    )
    assert result.stdout.splitlines()[-1] == (
        "check-wallets: 5 mismatch(es) (0 wallet, 4 monthly cap total, 1 purchase count)"
    )

    assert await rebuild(conn) == 2  # (user, first offer) and (user, second offer) this month
    assert await find_total_mismatches(conn) == [] and await find_count_mismatches(conn) == []
    await assert_totals_match_purchases(conn)
    await assert_counts_match_purchases(conn)  # the day counts too, which the replica-mode delete left behind
    assert await monthly_total(conn, user.id, first_offer) == Decimal("4.75")
    assert await monthly_total(conn, user.id, second_offer) == Decimal("2.50")
    assert await conn.fetchval("SELECT count(*) FROM cashback_monthly_totals") == 2
    assert _ops("check-wallets", "--database-url", database_url).returncode == 0


async def test_a_reversal_refused_for_a_missing_total_works_after_the_rebuild(client, conn, user, admin, database_url):
    merchant_id, offer_id = await make_shop(conn, cap="10")
    purchase_id = (await ingest(client, user, merchant_id, "100.00")).json()["id"]  # 5.00
    await conn.execute("DELETE FROM cashback_monthly_totals")
    refused = await client.patch(f"/api/v1/purchases/{purchase_id}/reverse", token=admin.token)
    assert refused.status_code == 500
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", uuid.UUID(purchase_id)) == "pending"

    result = _ops("rebuild-cap-totals", database_url=database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"MISMATCH monthly cap total user {user.id}, offer {offer_id}, month {today():%Y-%m}: "
        "no total, expected 5.00 (reversing or rejecting these purchases fails with data_corrupted)"
    )
    assert lines[1:] == [
        "rebuild-cap-totals: 1 mismatch(es) before",
        "rebuild-cap-totals: rebuilt 1 total(s) from the purchases",
        "rebuild-cap-totals: 0 mismatches after the rebuild",
    ]
    assert await monthly_total(conn, user.id, offer_id) == Decimal("5.00")

    assert (await client.patch(f"/api/v1/purchases/{purchase_id}/reverse", token=admin.token)).status_code == 200
    assert await monthly_total(conn, user.id, offer_id) == Decimal("0.00")
    assert (await ingest(client, user, merchant_id, "400.00")).json()["cashback_amount"] == "10.00"
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_a_dry_run_writes_nothing(client, conn, user, make_account, database_url):
    _, _, first_offer, _ = await _two_users_two_offers(client, conn, user, make_account)
    await conn.execute(
        "UPDATE cashback_monthly_totals SET earned = 9 WHERE user_id = $1 AND offer_id = $2",
        uuid.UUID(user.id),
        uuid.UUID(first_offer),
    )
    await conn.execute("DELETE FROM cashback_monthly_totals WHERE user_id <> $1", uuid.UUID(user.id))
    before = await _totals(conn)
    assert await count_rebuild_rows(conn) == 3

    result = _ops("rebuild-cap-totals", "--dry-run", database_url=database_url)
    assert result.returncode == 1
    assert result.stdout.count("MISMATCH monthly cap total") == 2
    assert "rebuild-cap-totals: 2 mismatch(es) before" in result.stdout
    assert "rebuild-cap-totals: dry run: would replace 2 total(s) by 3; nothing written" in result.stdout
    assert "rebuilt" not in result.stdout
    assert await _totals(conn) == before
    assert len(await find_total_mismatches(conn)) == 2

    again = _ops("rebuild-cap-totals", "--dry-run", "--database-url", database_url)
    assert again.returncode == 1  # still the same two: the dry run repaired nothing
    assert _ops("rebuild-cap-totals", database_url=database_url).returncode == 0
    after = _ops("rebuild-cap-totals", "--dry-run", database_url=database_url)
    assert after.returncode == 0
    assert "0 mismatch(es) before" in after.stdout and "would replace 3 total(s) by 3" in after.stdout


async def test_the_rebuild_needs_a_database_url():
    result = _ops("rebuild-cap-totals")
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr


async def test_a_rebuild_that_cannot_lock_purchases_in_time_changes_nothing(client, conn, user, database_url):
    merchant_id, _ = await make_shop(conn)
    assert (await ingest(client, user, merchant_id, "100.00")).status_code == 201
    await conn.execute("UPDATE cashback_monthly_totals SET earned = 1")
    before = await _totals(conn)
    holder = await asyncpg.connect(**parse_database_url(database_url))
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE purchases IN ROW EXCLUSIVE MODE")  # a writer in flight
            with pytest.raises(asyncpg.LockNotAvailableError):
                await rebuild(conn, lock_timeout_ms=50)
    finally:
        await holder.close()
    assert await _totals(conn) == before
    assert await conn.fetchval("SHOW lock_timeout") == "0"  # SET LOCAL ended with the transaction
    assert await rebuild(conn) == 1
    assert await find_total_mismatches(conn) == []


async def test_a_rebuild_during_ingestion_keeps_the_totals_exact(client, conn, make_account, database_url):
    merchant_id, offer_id = await make_shop(conn, cap="1000")
    accounts = [await make_account() for _ in range(4)]
    for account in accounts:
        assert (await ingest(client, account, merchant_id, "100.00")).status_code == 201
    # Drift first, so the rebuild has something to repair while the ingestions run.
    await conn.execute("UPDATE cashback_monthly_totals SET earned = earned + 7")
    rebuilder = await asyncpg.connect(**parse_database_url(database_url))
    try:
        work = [ingest(client, accounts[i % 4], merchant_id, "20.00") for i in range(10)]
        work.append(rebuild(rebuilder))
        work += [ingest(client, accounts[i % 4], merchant_id, "20.00") for i in range(10, 20)]
        results = await asyncio.gather(*work)
    finally:
        await rebuilder.close()
    written = results.pop(10)
    assert written == 4  # one total per account, this month
    assert all(r.status_code == 201 for r in results), [r.status_code for r in results]
    assert {r.json()["cashback_amount"] for r in results} == {"1.00"}
    for account in accounts:
        assert await monthly_total(conn, account.id, offer_id) == Decimal("10.00")  # 5.00 + 5 x 1.00
    assert await find_total_mismatches(conn) == []
    await assert_totals_match_purchases(conn)
    await assert_consistent(conn)


async def test_a_confirmation_refused_for_a_missing_count_works_after_the_rebuild(
    client, conn, user, admin, database_url
):
    merchant_id, _ = await make_shop(conn)
    purchase_id = (await ingest(client, user, merchant_id, "100.00")).json()["id"]
    await conn.execute("DELETE FROM purchase_month_counts")
    refused = await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)
    assert refused.status_code == 500
    assert await conn.fetchval("SELECT status FROM purchases WHERE id = $1", uuid.UUID(purchase_id)) == "pending"

    result = _ops("rebuild-cap-totals", database_url=database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"MISMATCH purchase count user {user.id}, month {today():%Y-%m}, status pending: no count, expected 1 "
        "(changing these purchases fails with data_corrupted)"
    )
    assert lines[-1] == "rebuild-cap-totals: 0 mismatches after the rebuild"
    assert (await client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=admin.token)).status_code == 200
    await assert_counts_match_purchases(conn)

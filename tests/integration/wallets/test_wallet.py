"""GET /users/me/wallet and its transactions (API.md §3.6), and the consistency check (§4.5)."""

import subprocess
import sys
from decimal import Decimal

import pytest

from server.wallets.consistency import find_mismatches
from tests.integration.purchases.helpers import assert_consistent, ingest, make_shop, set_balances


@pytest.mark.parametrize("path", ["/api/v1/users/me/wallet", "/api/v1/users/me/wallet/"])
async def test_new_wallet_is_all_zero(client, user, path):
    response = await client.get(path, token=user.token)
    assert response.status_code == 200
    assert response.json() == {
        "pending_balance": "0.00",
        "available_balance": "0.00",
        "paid_balance": "0.00",
        "reserved_balance": "0.00",
    }


async def test_a_user_without_a_wallet_row_reads_zero_and_an_inactive_one_is_refused(client, conn, user):
    await conn.execute("DELETE FROM wallets WHERE user_id = $1", user.id)
    response = await client.get("/api/v1/users/me/wallet", token=user.token)
    assert response.status_code == 200
    assert set(response.json().values()) == {"0.00"}
    await conn.execute("UPDATE users SET active = false WHERE id = $1", user.id)
    refused = await client.get("/api/v1/users/me/wallet", token=user.token)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "USER_INACTIVE"


async def test_wallet_shows_stored_balances_and_reserved_from_open_payouts(client, conn, user, admin):
    await set_balances(conn, user.id, "25.00")
    merchant_id, _ = await make_shop(conn)
    await ingest(client, user, merchant_id, "75.00")
    payout = await client.post("/api/v1/users/me/payouts", token=user.token, json={"amount": "12.50"})
    assert payout.status_code == 201
    wallet = (await client.get("/api/v1/users/me/wallet", token=user.token)).json()
    assert wallet == {
        "pending_balance": "3.75",
        "available_balance": "12.50",
        "paid_balance": "0.00",
        "reserved_balance": "12.50",
    }
    await client.patch(f"/api/v1/payouts/{payout.json()['id']}", token=admin.token, json={"status": "completed"})
    wallet = (await client.get("/api/v1/users/me/wallet", token=user.token)).json()
    assert wallet["paid_balance"] == "12.50" and wallet["reserved_balance"] == "0.00"
    assert (await client.get("/api/v1/users/me/wallet")).status_code == 401


async def test_transactions_newest_first_with_pagination(client, conn, user, make_account):
    other = await make_account()
    merchant_id, _ = await make_shop(conn)
    ids = [(await ingest(client, user, merchant_id, amount)).json()["id"] for amount in ("10.00", "20.00", "30.00")]
    await ingest(client, other, merchant_id, "40.00")
    await conn.execute(
        "UPDATE cashback_transactions SET created_at = now() - interval '1 hour' WHERE purchase_id = ANY($1::uuid[])",
        ids[:2],
    )
    for path in ("/api/v1/users/me/wallet/transactions", "/api/v1/users/me/wallet/transactions/"):
        body = (await client.get(path, token=user.token)).json()
        assert body["pagination"] == {"offset": 0, "limit": 10, "total": 3}
        tx_ids = await conn.fetch("SELECT id FROM cashback_transactions WHERE purchase_id = ANY($1::uuid[])", ids[:2])
        expected_tail = sorted((str(r["id"]) for r in tx_ids), reverse=True)
        assert [t["id"] for t in body["data"]][1:] == expected_tail
        first = body["data"][0]
        assert set(first) == {"id", "type", "amount", "status", "related_purchase_id", "created_at"}
        assert first["type"] == "cashback_credit" and first["amount"] == "1.50" and first["status"] == "pending"
        assert first["related_purchase_id"] == ids[2]
    page = (
        await client.get("/api/v1/users/me/wallet/transactions", token=user.token, params={"offset": 2, "limit": 5})
    ).json()
    assert page["pagination"] == {"offset": 2, "limit": 5, "total": 3} and len(page["data"]) == 1
    bad = await client.get("/api/v1/users/me/wallet/transactions", token=user.token, params={"offset": "-1"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["violations"][0]["field"] == "offset"


async def test_consistency_check_finds_each_broken_invariant(client, conn, user, make_account):
    await set_balances(conn, user.id, "20.00")
    merchant_id, _ = await make_shop(conn)
    await ingest(client, user, merchant_id, "100.00")
    await assert_consistent(conn)
    await conn.execute(
        "UPDATE wallets SET pending_balance = pending_balance + 1, paid_balance = paid_balance + 2 WHERE user_id = $1",
        user.id,
    )
    other = await make_account()
    await conn.execute("DELETE FROM wallets WHERE user_id = $1", other.id)
    found = {(m.user_id, m.balance): m for m in await find_mismatches(conn)}
    assert set(found) == {(user.id, "pending"), (user.id, "paid"), (other.id, "wallet")}
    assert found[(user.id, "pending")].stored == Decimal("6.00")
    assert found[(user.id, "pending")].expected == Decimal("5.00")
    assert "pending_balance is 6.00, expected 5.00" in found[(user.id, "pending")].describe()


def _check_wallets(*args, env_database_url=None):
    env = {"PATH": "/usr/bin:/bin", "ENV_FILE": "/dev/null"}
    if env_database_url:
        env["DATABASE_URL"] = env_database_url
    return subprocess.run(
        [sys.executable, "-m", "deploy.ops.cli", "check-wallets", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_check_wallets_command_exit_status_and_output(client, conn, user, database_url):
    await set_balances(conn, user.id, "20.00")
    clean = _check_wallets(env_database_url=database_url)
    assert clean.returncode == 0, clean.stderr
    assert "every wallet matches" in clean.stdout
    await conn.execute("UPDATE wallets SET available_balance = available_balance - 3 WHERE user_id = $1", user.id)
    broken = _check_wallets("--database-url", database_url, env_database_url="postgres://nobody@127.0.0.1:1/none")
    assert broken.returncode == 1
    assert f"MISMATCH user {user.id} ({user.email}): available_balance is 17.00, expected 20.00" in broken.stdout
    missing = _check_wallets()
    assert missing.returncode == 2 and "DATABASE_URL" in missing.stderr

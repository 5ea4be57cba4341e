"""Acceptance flows W3, W4 and W5 of API.md §7, over HTTP against real server processes running the
demo seed and the verification job with a one-second interval."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from server.db import parse_database_url
from server.seed import ALICE, BANKSIMFAIL, BOB, DAVE, LUXWATCHES, QUICKCART, SHOPLY
from tests.conftest import TEST_KEY
from tests.e2e.conftest import DEMO_REJECTION_MERCHANT
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AUTOPARTS = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
DAVE_SHOPLY = "cc000001-0000-0000-0000-000000000001"
DAVE_QUICKCART = "cc000001-0000-0000-0000-000000000002"
ALICE_BANKSIMFAIL = "bb000001-0000-0000-0000-000000000001"
REJECTION_REASON = "Bank reconciliation failed: no matching bank movement found after 3 verification attempt(s)."
JOB_ENV = {
    "PURCHASE_JOB_ENABLED": "true",
    "PURCHASE_CONFIRMATION_INTERVAL_SECONDS": "1",
    "REJECTION_MERCHANT_ID": DEMO_REJECTION_MERCHANT,
}


@pytest.fixture
def server_env() -> dict[str, str]:
    return dict(JOB_ENV)


class Flow:
    """HTTP calls as named accounts, plus read-only looks at the database for tick observation."""

    def __init__(self, seeded) -> None:
        self.seeded = seeded
        self.http = httpx.AsyncClient(base_url=seeded.server.url + "/api/v1", timeout=30)
        self.tokens: dict[str, str] = {}

    def login(self, name: str, email: str | None = None) -> str:
        self.tokens[name] = self.seeded.login(email or f"{name}@clicknback.com")
        return self.tokens[name]

    async def call(self, method: str, path: str, who: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def register(self, name: str) -> str:
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
        response = await self.call("POST", "/users", None, json={"email": email, "password": "Str0ng!Pass"})
        assert response.status_code == 201, response.text
        self.login(name, email)
        return response.json()["id"]

    async def purchase(
        self,
        who: str,
        user_id: str,
        merchant_id: str,
        amount: str,
        external_id: str | None = None,
        currency: str = "EUR",
    ) -> httpx.Response:
        return await self.call(
            "POST",
            "/purchases",
            who,
            json={
                "external_id": external_id or f"e2e-{uuid.uuid4()}",
                "user_id": user_id,
                "merchant_id": merchant_id,
                "amount": amount,
                "currency": currency,
            },
        )

    async def wallet(self, who: str) -> dict[str, Decimal]:
        response = await self.call("GET", "/users/me/wallet", who)
        assert response.status_code == 200
        return {key.replace("_balance", ""): Decimal(value) for key, value in response.json().items()}

    async def status_of(self, purchase_id: str) -> str:
        return (await self.call("GET", f"/purchases/{purchase_id}", "carol")).json()["status"]

    async def audit(self, resource_id: str) -> list[dict]:
        response = await self.call("GET", "/audit-logs", "carol", params={"resource_id": resource_id})
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def db_value(self, sql: str, *args: Any) -> Any:
        conn = await asyncpg.connect(**parse_database_url(self.seeded.database_url))
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def wait_for_status(self, purchase_id: str, status: str, timeout: float = 20.0) -> None:
        await wait_until(lambda: self._has_status(purchase_id, status), timeout, f"{purchase_id} {status}")

    async def _has_status(self, purchase_id: str, status: str) -> bool:
        return await self.status_of(purchase_id) == status

    async def wait_for_ticks(self, purchase_id: str, ticks: int = 2, timeout: float = 20.0) -> None:
        """A deferred purchase's next_verification_at moves on every tick that looks at it."""
        seen = [await self.db_value("SELECT next_verification_at FROM purchases WHERE id = $1", uuid.UUID(purchase_id))]

        async def moved() -> bool:
            value = await self.db_value(
                "SELECT next_verification_at FROM purchases WHERE id = $1", uuid.UUID(purchase_id)
            )
            if value != seen[-1]:
                seen.append(value)
            return len(seen) > ticks

        await wait_until(moved, timeout, f"{ticks} ticks over {purchase_id}")

    async def settle_seed(self) -> None:
        """Wait for the first ticks: every seeded pending purchase but dave's is confirmed or rejected."""

        async def settled() -> bool:
            response = await self.call("GET", "/purchases", "carol", params={"status": "pending"})
            return {p["user_id"] for p in response.json()["data"]} <= {DAVE}

        await wait_until(settled, 30, "seeded purchases settled")

    def check_wallets(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "deploy.ops.cli", "check-wallets", "--database-url", self.seeded.database_url],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "ENV_FILE": "/dev/null"},
        )
        assert result.returncode == 0, result.stdout + result.stderr


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def flow(seeded_server):
    flow = Flow(seeded_server)
    for name in ("alice", "bob", "carol", "dave"):
        flow.login(name)
    yield flow
    await flow.http.aclose()


async def test_w3_purchase_ingestion_and_asynchronous_confirmation(flow, seeded_server):
    # A second app process ticks over the same database: still one transition per purchase.
    second = ServerProcess(seeded_server.database_url, TEST_KEY, env=JOB_ENV).start()
    try:
        await flow.settle_seed()
        # 1. alice records a purchase.
        before = await flow.wallet("alice")
        created = await flow.purchase("alice", ALICE, SHOPLY, "75.00", external_id="w3-alice-1")
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "pending" and created.json()["cashback_amount"] == "3.75"
        purchase_id = created.json()["id"]
        after = await flow.wallet("alice")
        assert after["pending"] + after["available"] == before["pending"] + before["available"] + Decimal("3.75")
        if await flow.status_of(purchase_id) == "pending":
            assert after["pending"] == before["pending"] + Decimal("3.75")
        # 2. Duplicates.
        again = await flow.purchase("alice", ALICE, SHOPLY, "75.00", external_id="w3-alice-1")
        assert again.status_code == 409 and again.json()["error"]["code"] == "DUPLICATE_PURCHASE"
        assert again.json()["error"]["details"]["previously_processed_amount"] == "75.00"
        bobs = await flow.purchase("bob", BOB, SHOPLY, "75.00", external_id="w3-alice-1")
        assert bobs.status_code == 409 and bobs.json()["error"]["details"] == {"external_id": "w3-alice-1"}
        # 3. Rejections.
        assert (await flow.purchase("alice", BOB, SHOPLY, "10.00")).status_code == 403
        lux = await flow.purchase("alice", ALICE, LUXWATCHES, "10.00")
        assert lux.status_code == 422 and lux.json()["error"]["code"] == "MERCHANT_NOT_ELIGIBLE"
        expired = await flow.purchase("alice", ALICE, AUTOPARTS, "10.00")
        assert expired.status_code == 422 and expired.json()["error"]["code"] == "OFFER_NOT_AVAILABLE"
        usd = await flow.purchase("alice", ALICE, SHOPLY, "10.00", currency="USD")
        assert usd.status_code == 422 and usd.json()["error"]["code"] == "UNSUPPORTED_CURRENCY"
        cents = await flow.call(
            "POST",
            "/purchases",
            "alice",
            json={
                "external_id": "w3-cents",
                "user_id": ALICE,
                "merchant_id": SHOPLY,
                "amount": 1.005,
                "currency": "EUR",
            },
        )
        assert cents.status_code == 422 and cents.json()["error"]["code"] == "VALIDATION_ERROR"
        # 4. Monthly cap with a new user at Shoply (cap 50).
        newcomer = await flow.register("capper")
        credited = [
            (await flow.purchase("capper", newcomer, SHOPLY, amount)).json()["cashback_amount"]
            for amount in ("900.00", "200.00", "100.00")
        ]
        assert credited == ["45.00", "5.00", "0.00"]
        # 5. 20 concurrent posts with one new external_id: one 201, 19 x 409, credited once.
        bob_before = await flow.wallet("bob")
        racing = await asyncio.gather(
            *(flow.purchase("bob", BOB, SHOPLY, "40.00", external_id="w3-race") for _ in range(20))
        )
        statuses = sorted(r.status_code for r in racing)
        assert statuses == [201] + [409] * 19, statuses
        bob_after = await flow.wallet("bob")
        credit = Decimal(next(r for r in racing if r.status_code == 201).json()["cashback_amount"])
        assert credit == Decimal("2.00")
        assert bob_after["pending"] + bob_after["available"] == bob_before["pending"] + bob_before["available"] + credit
        # 6. Confirmed within an interval, by exactly one of the two processes.
        await flow.wait_for_status(purchase_id, "confirmed", timeout=10)
        settled = await flow.wallet("alice")
        assert settled["pending"] == before["pending"]
        assert settled["available"] == before["available"] + Decimal("3.75")
        rows = await flow.audit(purchase_id)
        assert [(r["action"], r["actor_type"], r["actor_id"]) for r in rows] == [("PURCHASE_CONFIRMED", "system", None)]
        # 7. A BankSimFail purchase stays pending for two intervals, then is rejected.
        pending_before = (await flow.wallet("alice"))["pending"]
        failing = await flow.purchase("alice", ALICE, BANKSIMFAIL, "99.00")
        assert failing.status_code == 201 and failing.json()["cashback_amount"] == "4.95"
        failing_id = failing.json()["id"]
        await flow.wait_for_ticks(failing_id, ticks=1)
        assert await flow.status_of(failing_id) == "pending"
        await flow.wait_for_status(failing_id, "rejected", timeout=20)
        assert (await flow.wallet("alice"))["pending"] == pending_before
        rejected = await flow.audit(failing_id)
        assert [r["action"] for r in rejected] == ["PURCHASE_REJECTED"]
        assert rejected[0]["details"]["reason"] == REJECTION_REASON and rejected[0]["actor_type"] == "system"
        # 8. Lists and access.
        mine = await flow.call("GET", "/users/me/purchases", "alice", params={"status": "confirmed", "limit": 100})
        assert purchase_id in [p["id"] for p in mine.json()["data"]]
        bogus = await flow.call("GET", "/users/me/purchases", "alice", params={"status": "bogus"})
        assert bogus.status_code == 422 and bogus.json()["error"]["code"] == "INVALID_PURCHASE_STATUS"
        assert (await flow.call("GET", f"/purchases/{purchase_id}", "bob")).status_code == 403
        assert (await flow.call("GET", f"/purchases/{purchase_id}", "carol")).status_code == 200
        # 9. The global flag pauses auto-confirmation; turning it back on resumes it.
        paused = await flow.call("PUT", "/feature-flags/purchase_auto_confirm", "carol", json={"enabled": False})
        assert paused.status_code == 200, paused.text
        held = (await flow.purchase("alice", ALICE, SHOPLY, "20.00")).json()["id"]
        await flow.wait_for_ticks(held, ticks=2)
        assert await flow.status_of(held) == "pending"
        resumed = await flow.call("PUT", "/feature-flags/purchase_auto_confirm", "carol", json={"enabled": True})
        assert resumed.status_code == 200
        await flow.wait_for_status(held, "confirmed", timeout=10)
        assert second.stop() == 0
        flow.check_wallets()
    finally:
        second.stop()


async def _user_with_confirmed_cashback(flow: Flow, name: str) -> str:
    user_id = await flow.register(name)
    response = await flow.purchase(name, user_id, SHOPLY, "300.00")
    assert response.status_code == 201 and response.json()["cashback_amount"] == "15.00"
    await flow.wait_for_status(response.json()["id"], "confirmed")
    return user_id


async def test_w4_wallet_and_payout(flow):
    # 1. A new user earns 15.00 of available cashback.
    user_id = await _user_with_confirmed_cashback(flow, "payee")
    wallet = await flow.call("GET", "/users/me/wallet", "payee")
    assert wallet.json()["available_balance"] == "15.00" and wallet.json()["reserved_balance"] == "0.00"
    transactions = (await flow.call("GET", "/users/me/wallet/transactions", "payee")).json()["data"]
    assert [(t["type"], t["status"], t["amount"]) for t in transactions] == [("cashback_credit", "available", "15.00")]
    # 2. Payout limits.
    low = await flow.call("POST", "/users/me/payouts", "payee", json={"amount": "9.99"})
    assert low.status_code == 422 and low.json()["error"]["code"] == "VALIDATION_ERROR"
    much = await flow.call("POST", "/users/me/payouts", "payee", json={"amount": "20.00"})
    assert much.status_code == 409 and much.json()["error"]["code"] == "INSUFFICIENT_BALANCE"
    assert much.json()["error"]["details"] == {"requested_amount": "20.00", "available_balance": "15.00"}
    # 3. A request reserves the amount; a second one is refused.
    payout = await flow.call("POST", "/users/me/payouts", "payee", json={"amount": "10.00"})
    assert payout.status_code == 201 and payout.json()["status"] == "requested"
    payout_id = payout.json()["id"]
    wallet = (await flow.call("GET", "/users/me/wallet", "payee")).json()
    assert wallet["available_balance"] == "5.00" and wallet["reserved_balance"] == "10.00"
    second = await flow.call("POST", "/users/me/payouts", "payee", json={"amount": "10.00"})
    assert second.status_code == 409 and second.json()["error"]["code"] == "PAYOUT_ALREADY_REQUESTED"
    # 4. In a separate run, 20 concurrent requests of 10.00 against 15.00: exactly one 201.
    await _user_with_confirmed_cashback(flow, "racer")
    racing = await asyncio.gather(
        *(flow.call("POST", "/users/me/payouts", "racer", json={"amount": "10.00"}) for _ in range(20))
    )
    assert sorted(r.status_code for r in racing) == [201] + [409] * 19
    racer_wallet = (await flow.call("GET", "/users/me/wallet", "racer")).json()
    assert racer_wallet["available_balance"] == "5.00" and racer_wallet["reserved_balance"] == "10.00"
    racer_payout = next(r for r in racing if r.status_code == 201).json()["id"]
    # 5. carol completes the payout.
    listed = await flow.call("GET", "/payouts", "carol", params={"status": "requested", "limit": 100})
    assert payout_id in [p["id"] for p in listed.json()["data"]]
    assert (await flow.call("GET", "/payouts", "payee", params={"status": "requested"})).status_code == 403
    done = await flow.call("PATCH", f"/payouts/{payout_id}", "carol", json={"status": "completed"})
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert (await flow.call("GET", "/users/me/wallet", "payee")).json()["paid_balance"] == "10.00"
    again = await flow.call("PATCH", f"/payouts/{payout_id}", "carol", json={"status": "completed"})
    assert again.status_code == 400 and again.json()["error"]["code"] == "INVALID_PAYOUT_TRANSITION"
    approved = await flow.call("PATCH", f"/payouts/{payout_id}", "carol", json={"status": "approved"})
    assert approved.status_code == 422
    # 6. Alternatively a failed payout gives the money back.
    failed = await flow.call("PATCH", f"/payouts/{racer_payout}", "carol", json={"status": "failed"})
    assert failed.status_code == 200
    assert (await flow.call("GET", "/users/me/wallet", "racer")).json()["available_balance"] == "15.00"
    # 7. The payout in the user's list, and its audit trail.
    own = (await flow.call("GET", "/users/me/payouts", "payee")).json()["data"]
    assert [p["id"] for p in own] == [payout_id]
    trail = sorted((r["action"], r["actor_type"]) for r in await flow.audit(payout_id))
    assert trail == [("PAYOUT_COMPLETED", "admin"), ("PAYOUT_REQUESTED", "user")]
    assert [(r["action"], r["actor_type"]) for r in await flow.audit(racer_payout)][0] == ("PAYOUT_FAILED", "admin")
    assert user_id
    flow.check_wallets()


async def test_w5_admin_confirmation_and_reversal(flow):
    # 1. dave's user flag disables auto-confirmation: his purchase stays pending across ticks.
    dave_before = await flow.wallet("dave")
    created = await flow.purchase("dave", DAVE, SHOPLY, "60.00")
    assert created.status_code == 201 and created.json()["status"] == "pending"
    purchase_id, cashback = created.json()["id"], Decimal(created.json()["cashback_amount"])
    await flow.wait_for_ticks(purchase_id, ticks=2)
    assert await flow.status_of(purchase_id) == "pending"
    # 2. carol finds it with the seeded ones.
    listed = await flow.call("GET", "/purchases", "carol", params={"status": "pending", "user_id": DAVE})
    assert {purchase_id, DAVE_SHOPLY, DAVE_QUICKCART} <= {p["id"] for p in listed.json()["data"]}
    assert (await flow.call("GET", f"/purchases/{purchase_id}", "carol")).status_code == 200
    # 3. Admin confirmation.
    confirmed = await flow.call("POST", f"/purchases/{purchase_id}/confirmation", "carol")
    assert confirmed.status_code == 200
    assert confirmed.json() == {"id": purchase_id, "status": "confirmed", "cashback_amount": money(cashback)}
    dave_after = await flow.wallet("dave")
    assert dave_after["pending"] == dave_before["pending"]
    assert dave_after["available"] == dave_before["available"] + cashback
    trail = await flow.audit(purchase_id)
    carol_id = (await flow.call("GET", "/users/me", "carol")).json()["id"]
    assert [(r["action"], r["actor_type"], r["actor_id"]) for r in trail] == [
        ("PURCHASE_CONFIRMED_BY_ADMIN", "admin", carol_id)
    ]
    again = await flow.call("POST", f"/purchases/{purchase_id}/confirmation", "carol")
    assert again.status_code == 400 and again.json()["error"]["code"] == "PURCHASE_NOT_PENDING"
    # 4. Reversal of a pending purchase.
    reversed_ = await flow.call("PATCH", f"/purchases/{DAVE_QUICKCART}/reverse", "carol")
    assert reversed_.status_code == 200
    assert reversed_.json() == {"id": DAVE_QUICKCART, "status": "reversed", "cashback_amount": "0.00"}
    assert (await flow.wallet("dave"))["pending"] == dave_after["pending"] - Decimal("3.00")
    reversal = await flow.audit(DAVE_QUICKCART)
    assert [(r["action"], r["details"]["prior_status"]) for r in reversal] == [("PURCHASE_REVERSED", "pending")]
    twice = await flow.call("PATCH", f"/purchases/{DAVE_QUICKCART}/reverse", "carol")
    assert twice.status_code == 400 and twice.json()["error"]["code"] == "PURCHASE_ALREADY_REVERSED"
    # 5. Reversal of the confirmed purchase; a rejected one is not reversible.
    available_before = (await flow.wallet("dave"))["available"]
    assert (await flow.call("PATCH", f"/purchases/{purchase_id}/reverse", "carol")).status_code == 200
    assert (await flow.wallet("dave"))["available"] == available_before - cashback
    await flow.wait_for_status(ALICE_BANKSIMFAIL, "rejected", timeout=30)
    rejected = await flow.call("PATCH", f"/purchases/{ALICE_BANKSIMFAIL}/reverse", "carol")
    assert rejected.status_code == 400 and rejected.json()["error"]["code"] == "PURCHASE_NOT_REVERSIBLE"
    # 6. Access and unknown ids.
    assert (await flow.call("POST", f"/purchases/{DAVE_SHOPLY}/confirmation", "alice")).status_code == 403
    assert (await flow.call("PATCH", f"/purchases/{DAVE_SHOPLY}/reverse", "alice")).status_code == 403
    for raw in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await flow.call("POST", f"/purchases/{raw}/confirmation", "carol")).status_code == 404
        assert (await flow.call("PATCH", f"/purchases/{raw}/reverse", "carol")).status_code == 404
    # 7. Feature flags scoped to alice.
    flag = await flow.call(
        "PUT",
        "/feature-flags/purchase_auto_confirm",
        "carol",
        json={"enabled": False, "scope_type": "user", "scope_id": ALICE},
    )
    assert flag.status_code == 200, flag.text
    held = (await flow.purchase("alice", ALICE, QUICKCART, "10.00")).json()["id"]
    await flow.wait_for_ticks(held, ticks=2)
    assert await flow.status_of(held) == "pending"
    params = {"scope_type": "user", "scope_id": ALICE}
    assert (
        await flow.call("DELETE", "/feature-flags/purchase_auto_confirm", "carol", params=params)
    ).status_code == 204
    gone = await flow.call("DELETE", "/feature-flags/purchase_auto_confirm", "carol", params=params)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "FEATURE_FLAG_NOT_FOUND"
    global_with_id = await flow.call(
        "PUT",
        "/feature-flags/purchase_auto_confirm",
        "carol",
        json={"enabled": True, "scope_type": "global", "scope_id": ALICE},
    )
    assert global_with_id.status_code == 422 and global_with_id.json()["error"]["code"] == "VALIDATION_ERROR"
    merchant_without_id = await flow.call(
        "PUT", "/feature-flags/purchase_auto_confirm", "carol", json={"enabled": True, "scope_type": "merchant"}
    )
    assert merchant_without_id.status_code == 422
    assert merchant_without_id.json()["error"]["code"] == "FEATURE_FLAG_SCOPE_ID_REQUIRED"
    await flow.wait_for_status(held, "confirmed", timeout=10)  # the flag row is gone: auto-confirmed again
    flow.check_wallets()


def money(value: Decimal) -> str:
    return f"{value:.2f}"

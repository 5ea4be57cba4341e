"""Every operation that moves money, at the same time, then a full count (API.md §3.5-§3.7, §4.1, §4.5-§4.7).

A seeded random mix of ingestion (new purchases, duplicates of one external_id racing each other,
purchases past the monthly cap), admin confirmation and reversal (also of one purchase at once),
verification ticks (two at once, as two workers would run them), payout requests and admin
completion or failure (also of one payout at once) runs in bounded waves of asyncio.gather against
the real app and database. The interleaving is up to the event loop and PostgreSQL; the operations
are fixed by the seed, which every assertion message names (MONEY_MIX_SEED=<n> runs another mix).

Afterwards nothing may be lost or counted twice: each wallet equals what its purchases (with the
cashback each 201 credited) and payouts imply, each purchase has one transaction in the matching
state, the monthly totals equal their recomputation, every accepted HTTP answer left exactly one
audit row, and every answer was a documented status of its endpoint.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from server.jobs import verification
from server.purchases.cap_totals import find_total_mismatches
from tests.conftest import with_settings
from tests.integration.purchases.helpers import (
    assert_consistent,
    assert_totals_match_purchases,
    ingest,
    make_shop,
    set_balances,
    wallet_row,
)

SEED = int(os.environ.get("MONEY_MIX_SEED", "20261127"))  # another seed explores other mixes
WAVES = 6
OPERATIONS_PER_WAVE = 40  # plus two verification ticks per wave
USERS = 5
CENT = Decimal("0.01")
ZERO = Decimal("0.00")

AMOUNTS = [Decimal(a) for a in ("20.00", "33.33", "49.50", "75.00", "120.00", "300.00", "999.99")]
PAYOUT_AMOUNTS = [Decimal(a) for a in ("10.00", "12.50", "15.00", "25.00")]

# The documented answers of each endpoint to a well-formed request of this test (API.md §3.5, §3.7).
DOCUMENTED = {
    "ingest": {(201, None), (409, "DUPLICATE_PURCHASE")},
    "confirm": {(200, None), (400, "PURCHASE_NOT_PENDING")},
    "reverse": {
        (200, None),
        (400, "PURCHASE_ALREADY_REVERSED"),
        (400, "PURCHASE_NOT_REVERSIBLE"),
        (409, "INSUFFICIENT_BALANCE"),
    },
    "payout": {(201, None), (409, "PAYOUT_ALREADY_REQUESTED"), (409, "INSUFFICIENT_BALANCE")},
    "process": {(200, None), (400, "INVALID_PAYOUT_TRANSITION")},
}


@dataclass
class Shop:
    merchant_id: str
    percentage: Decimal
    fixed: Decimal | None

    def raw(self, amount: Decimal) -> Decimal:
        return (
            self.fixed if self.fixed is not None else (amount * self.percentage / 100).quantize(CENT, ROUND_HALF_EVEN)
        )


@dataclass
class Ledger:
    """What the HTTP answers and the ticks said, to hold the database to afterwards."""

    answers: list[tuple[str, int, str | None]] = field(default_factory=list)
    credited: dict[str, Decimal] = field(default_factory=dict)  # purchase id -> cashback of its 201
    raw: dict[str, Decimal] = field(default_factory=dict)  # purchase id -> cashback before the cap
    owner: dict[str, str] = field(default_factory=dict)  # purchase id -> user id
    by_external_id: dict[str, str] = field(default_factory=dict)  # external id -> purchase id
    external_ids: list[str] = field(default_factory=list)  # every external id sent, first use order
    confirmed_by_admin: Counter = field(default_factory=Counter)
    reversed: Counter = field(default_factory=Counter)
    payouts: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # payout id -> (user id, amount)
    processed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # payout id -> 200s
    ticks: list[verification.TickResult] = field(default_factory=list)
    capped: int = 0  # 201s credited less than the raw cashback

    def answer(self, kind: str, response) -> dict:
        body = response.json()
        code = body.get("error", {}).get("code") if response.status_code >= 400 else None
        self.answers.append((kind, response.status_code, code))
        return body


class Mix:
    """The seeded operations against the app: what each sends, and the Ledger of what it was told."""

    def __init__(self, client, admin, tick_settings, users: list, shops: list[Shop]) -> None:
        self.client, self.admin, self.tick_settings = client, admin, tick_settings
        self.users, self.shops = users, shops
        self.rng = random.Random(SEED)
        self.seed = f"seed {SEED}"
        self.ledger = Ledger()

    async def record(self, account, shop: Shop, amount: Decimal, external_id: str) -> None:
        ledger, seed = self.ledger, self.seed
        response = await ingest(self.client, account, shop.merchant_id, str(amount), external_id=external_id)
        body = ledger.answer("ingest", response)
        if response.status_code == 201:
            purchase_id = body["id"]
            assert external_id not in ledger.by_external_id, (seed, "a second 201 for", external_id)
            ledger.by_external_id[external_id] = purchase_id
            ledger.credited[purchase_id] = Decimal(body["cashback_amount"])
            ledger.raw[purchase_id] = shop.raw(amount)
            ledger.owner[purchase_id] = account.id
            ledger.capped += ledger.credited[purchase_id] < ledger.raw[purchase_id]

    async def confirm(self, purchase_id: str) -> None:
        response = await self.client.post(f"/api/v1/purchases/{purchase_id}/confirmation", token=self.admin.token)
        body = self.ledger.answer("confirm", response)
        if response.status_code == 200:
            self.ledger.confirmed_by_admin[purchase_id] += 1
            assert body == {
                "id": purchase_id,
                "status": "confirmed",
                "cashback_amount": str(self.ledger.credited[purchase_id]),
            }, (self.seed, body)

    async def reverse(self, purchase_id: str) -> None:
        response = await self.client.patch(f"/api/v1/purchases/{purchase_id}/reverse", token=self.admin.token)
        body = self.ledger.answer("reverse", response)
        if response.status_code == 200:
            self.ledger.reversed[purchase_id] += 1
            assert body == {"id": purchase_id, "status": "reversed", "cashback_amount": "0.00"}, (self.seed, body)

    async def request_payout(self, account, amount: Decimal, then: str | None = None) -> None:
        """A payout request; with `then`, an admin completes or fails it as soon as it is accepted."""
        response = await self.client.post("/api/v1/users/me/payouts", token=account.token, json={"amount": str(amount)})
        body = self.ledger.answer("payout", response)
        if response.status_code == 201:
            assert (body["user_id"], Decimal(body["amount"]), body["status"]) == (account.id, amount, "requested"), (
                self.seed,
                body,
            )
            self.ledger.payouts[body["id"]] = (account.id, amount)
            if then is not None:
                await self.process(body["id"], then)

    async def process(self, payout_id: str, outcome: str) -> None:
        response = await self.client.patch(
            f"/api/v1/payouts/{payout_id}", token=self.admin.token, json={"status": outcome}
        )
        body = self.ledger.answer("process", response)
        if response.status_code == 200:
            assert body["status"] == outcome, (self.seed, body)
            self.ledger.processed[payout_id].append(outcome)

    async def tick(self) -> None:
        self.ledger.ticks.append(await verification.run_tick(self.tick_settings))

    def new_external_id(self) -> str:
        external_id = f"mix-{SEED}-{len(self.ledger.external_ids)}"
        self.ledger.external_ids.append(external_id)
        return external_id

    def pick(self, items: list):
        """One item for one draw whatever the list's length, so the seed fixes the sequence of
        operations even though what earlier waves created depends on the interleaving."""
        return items[int(self.rng.random() * len(items))]

    def one_wave(self) -> list:
        """The wave's operations, from the seed and what earlier waves created (in creation order)."""
        ledger, rng, pick = self.ledger, self.rng, self.pick
        purchases = [ledger.by_external_id[e] for e in ledger.external_ids if e in ledger.by_external_id]
        payouts = list(ledger.payouts)
        still_open = [p for p in payouts if not ledger.processed.get(p)] or payouts
        operations = [self.tick(), self.tick()]
        for _ in range(10 * OPERATIONS_PER_WAVE):  # a draw may find nothing to act on yet
            if len(operations) >= OPERATIONS_PER_WAVE + 2:
                break
            kind = rng.choices(
                ["ingest", "race", "repeat", "confirm", "reverse", "contest", "payout", "cashout", "process", "settle"],
                weights=[30, 4, 6, 10, 10, 3, 10, 8, 8, 2],
            )[0]
            account, shop, amount = pick(self.users), pick(self.shops), pick(AMOUNTS)
            if kind == "ingest":
                operations.append(self.record(account, shop, amount, self.new_external_id()))
            elif kind == "race":  # one new external id, sent at once by its owner and someone else
                external_id = self.new_external_id()
                operations += [self.record(account, shop, amount, external_id) for _ in range(2)]
                operations.append(self.record(pick(self.users), shop, amount, external_id))
            elif kind == "repeat" and ledger.external_ids:
                operations.append(self.record(account, shop, amount, pick(ledger.external_ids)))
            elif kind == "confirm" and purchases:
                operations.append(self.confirm(pick(purchases)))
            elif kind == "reverse" and purchases:
                operations.append(self.reverse(pick(purchases)))
            elif kind == "contest" and purchases:  # one recent purchase confirmed and reversed twice at once
                purchase_id = pick(purchases[-20:])
                operations += [self.confirm(purchase_id), self.reverse(purchase_id), self.reverse(purchase_id)]
            elif kind == "settle" and payouts:  # one payout completed and failed at once
                payout_id = pick(still_open)
                operations += [self.process(payout_id, "completed"), self.process(payout_id, "failed")]
            elif kind == "payout":
                operations.append(self.request_payout(account, pick(PAYOUT_AMOUNTS)))
            elif kind == "cashout":
                operations.append(
                    self.request_payout(account, pick(PAYOUT_AMOUNTS), then=pick(["completed", "failed"]))
                )
            elif kind == "process" and payouts:  # mostly payouts still open when the wave began
                payout_id = pick(still_open if rng.random() < 0.8 else payouts)
                operations.append(self.process(payout_id, pick(["completed", "failed"])))
        rng.shuffle(operations)
        return operations


async def set_up(client, conn, settings, admin, make_account) -> Mix:
    """Users, four shops (one the job rejects, one with a fixed cashback), a user whose purchases only
    admins confirm, and money to withdraw from the first wave on."""
    users = [await make_account() for _ in range(USERS)]
    shops = []
    for percentage, fixed, cap in (("5", None, "25"), ("0", "3.00", "10"), ("10", None, "20"), ("5", None, "100")):
        merchant_id, _ = await make_shop(conn, percentage=percentage, fixed=fixed, cap=cap)
        shops.append(Shop(merchant_id, Decimal(percentage), Decimal(fixed) if fixed else None))
    bank_fail = shops[3]
    # The job rejects bank_fail's purchases on their second tick; a tiny interval makes every tick
    # the next one, so soft-failed and deferred purchases are due again without touching the clock.
    tick_settings = with_settings(
        settings,
        rejection_merchant_id=bank_fail.merchant_id,
        purchase_max_verification_attempts=2,
        purchase_confirmation_interval_seconds=0.001,
    )
    # The last user's purchases are never auto-confirmed: only admins move them (API.md §4.7, §4.8).
    flag = await client.put(
        "/api/v1/feature-flags/purchase_auto_confirm",
        token=admin.token,
        json={"enabled": False, "scope_type": "user", "scope_id": users[-1].id},
    )
    assert flag.status_code == 200, flag.text
    mix = Mix(client, admin, tick_settings, users, shops)
    ledger = mix.ledger
    # Some money to withdraw from the first wave on: a confirmed purchase of 60.00 cashback each.
    for account in users:
        await set_balances(conn, account.id, "60.00")
    for row in await conn.fetch("SELECT id, external_id, user_id, cashback_amount FROM purchases"):
        purchase_id = str(row["id"])
        ledger.external_ids.append(row["external_id"])
        ledger.by_external_id[row["external_id"]] = purchase_id
        ledger.credited[purchase_id] = ledger.raw[purchase_id] = row["cashback_amount"]
        ledger.owner[purchase_id] = str(row["user_id"])
    return mix


def answers_were_documented_and_ticks_settled(mix: Mix) -> None:
    ledger, seed = mix.ledger, mix.seed
    answered = {(kind, status, code) for kind, status, code in ledger.answers}
    undocumented = {a for a in answered if (a[1], a[2]) not in DOCUMENTED[a[0]]}
    assert not undocumented, (seed, undocumented, Counter(ledger.answers))
    assert all(t.failed == 0 for t in ledger.ticks), (seed, ledger.ticks)


async def one_purchase_per_accepted_external_id(mix: Mix, conn) -> dict:
    """One purchase per accepted external id, one transaction each, in the matching state; the rows."""
    ledger, seed = mix.ledger, mix.seed
    rows = {
        str(r["id"]): r
        for r in await conn.fetch(
            "SELECT p.id, p.external_id, p.user_id, p.offer_id, p.status, p.cashback_amount, p.created_at, "
            "       (SELECT count(*) FROM cashback_transactions t WHERE t.purchase_id = p.id) AS transactions, "
            "       t.user_id AS tx_user_id, t.amount AS tx_amount, t.status AS tx_status "
            "FROM purchases p LEFT JOIN cashback_transactions t ON t.purchase_id = p.id"
        )
    }
    assert set(rows) == set(ledger.credited), (seed, "purchases without a 201, or 201s without a purchase")
    assert set(ledger.by_external_id) == set(ledger.external_ids), (seed, "an external id without its one 201")
    assert {r["external_id"]: i for i, r in rows.items()} == ledger.by_external_id, seed
    assert await conn.fetchval("SELECT count(*) FROM cashback_transactions") == len(rows), seed
    transaction_state = {"pending": "pending", "confirmed": "available", "rejected": "reversed", "reversed": "reversed"}
    for purchase_id, row in rows.items():
        credited = ledger.credited[purchase_id]
        where = (seed, purchase_id, dict(row))
        assert str(row["user_id"]) == ledger.owner[purchase_id] == str(row["tx_user_id"]), where
        assert row["transactions"] == 1 and row["tx_amount"] == credited, where
        assert row["tx_status"] == transaction_state[row["status"]], where
        assert row["cashback_amount"] == (ZERO if row["status"] == "reversed" else credited), where
        assert ZERO <= credited <= ledger.raw[purchase_id], where
        assert ledger.reversed[purchase_id] == (row["status"] == "reversed"), where
        assert ledger.confirmed_by_admin[purchase_id] <= 1, where
    return rows


async def monthly_cap_held_and_totals_match(mix: Mix, conn, rows: dict) -> None:
    """The monthly cap held, and the running totals equal their recomputation (migration 4)."""
    seed = mix.seed
    counted: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in rows.values():
        if row["status"] in ("pending", "confirmed"):
            counted[(str(row["user_id"]), str(row["offer_id"]), row["created_at"].strftime("%Y-%m"))] += row[
                "cashback_amount"
            ]
    cap_of = {str(r["id"]): r["monthly_cap_per_user"] for r in await conn.fetch("SELECT * FROM offers")}
    over_cap = {key: total for key, total in counted.items() if total > cap_of[key[1]]}
    assert not over_cap, (seed, over_cap)
    stored_totals = {
        (str(r["user_id"]), str(r["offer_id"]), r["month"].strftime("%Y-%m")): r["earned"]
        for r in await conn.fetch("SELECT * FROM cashback_monthly_totals")
    }
    assert {k: v for k, v in stored_totals.items() if v != 0} == {k: v for k, v in counted.items() if v != 0}, seed
    await assert_totals_match_purchases(conn)
    assert await find_total_mismatches(conn) == [], seed


async def payouts_processed_at_most_once(mix: Mix, conn) -> dict:
    """One payout per 201, processed at most once, at most one open per user; the rows."""
    ledger, seed = mix.ledger, mix.seed
    payout_rows = {str(r["id"]): r for r in await conn.fetch("SELECT * FROM payouts")}
    assert {i: (str(r["user_id"]), r["amount"]) for i, r in payout_rows.items()} == ledger.payouts, seed
    for payout_id, row in payout_rows.items():
        expected = ledger.processed.get(payout_id, [])
        assert len(expected) <= 1 and row["status"] == (expected[0] if expected else "requested"), (
            seed,
            payout_id,
            row["status"],
            expected,
        )
    open_per_user = Counter(str(r["user_id"]) for r in payout_rows.values() if r["status"] == "requested")
    assert max(open_per_user.values(), default=0) <= 1, (seed, open_per_user)
    return payout_rows


async def wallets_add_up(mix: Mix, conn, rows: dict, payout_rows: dict) -> None:
    """Each wallet is what its purchases (as credited by their 201s) and payouts imply (§4.5)."""
    ledger, seed = mix.ledger, mix.seed
    for account in mix.users:
        mine = [(ledger.credited[i], r["status"]) for i, r in rows.items() if str(r["user_id"]) == account.id]
        payouts = [(r["amount"], r["status"]) for r in payout_rows.values() if str(r["user_id"]) == account.id]
        withdrawn = sum((a for a, s in payouts if s in ("requested", "completed")), ZERO)
        expected = {
            "pending": sum((c for c, s in mine if s == "pending"), ZERO),
            "available": sum((c for c, s in mine if s == "confirmed"), ZERO) - withdrawn,
            "paid": sum((a for a, s in payouts if s == "completed"), ZERO),
        }
        stored = await wallet_row(conn, account.id)
        assert stored == expected, (seed, account.id, stored, expected)
        assert min(stored.values()) >= 0, (seed, account.id, stored)
        shown = (await mix.client.get("/api/v1/users/me/wallet", token=account.token)).json()
        reserved = sum((a for a, s in payouts if s == "requested"), ZERO)
        assert shown == {
            "pending_balance": str(stored["pending"]),
            "available_balance": str(stored["available"]),
            "paid_balance": str(stored["paid"]),
            "reserved_balance": str(reserved),
        }, (seed, shown)
    await assert_consistent(conn)


async def one_audit_row_per_accepted_change(mix: Mix, conn, rows: dict) -> Counter:
    """Exactly one audit row per accepted change, none for a refusal (§4.9); the actions counted."""
    ledger, seed = mix.ledger, mix.seed
    audit = Counter(r["action"] for r in await conn.fetch("SELECT action FROM audit_logs"))
    ok = Counter((kind, status) for kind, status, _ in ledger.answers)
    statuses = Counter(r["status"] for r in rows.values())
    assert audit == Counter(
        {
            k: v
            for k, v in {
                "FEATURE_FLAG_SET": 1,
                "PURCHASE_CONFIRMED": sum(t.confirmed for t in ledger.ticks),
                "PURCHASE_REJECTED": sum(t.rejected for t in ledger.ticks),
                "PURCHASE_CONFIRMED_BY_ADMIN": ok[("confirm", 200)],
                "PURCHASE_REVERSED": ok[("reverse", 200)],
                "PAYOUT_REQUESTED": ok[("payout", 201)],
                "PAYOUT_COMPLETED": sum(p == ["completed"] for p in ledger.processed.values()),
                "PAYOUT_FAILED": sum(p == ["failed"] for p in ledger.processed.values()),
            }.items()
            if v
        }
    ), (seed, audit, ok)
    assert statuses["rejected"] == sum(t.rejected for t in ledger.ticks), (seed, statuses)
    manual_by_job = await conn.fetchval(
        "SELECT count(*) FROM audit_logs a JOIN purchases p ON p.id = a.resource_id "
        "WHERE a.action IN ('PURCHASE_CONFIRMED', 'PURCHASE_REJECTED') AND p.user_id = $1",
        uuid.UUID(mix.users[-1].id),
    )
    assert manual_by_job == 0, seed
    return audit


def the_mix_exercised_everything(mix: Mix, audit: Counter) -> dict:
    """What the mix is about really happened (fixed by the seed, not by luck)."""
    ledger, seed = mix.ledger, mix.seed
    ok = Counter((kind, status) for kind, status, _ in ledger.answers)
    exercised = {
        "operations": len(ledger.answers) + len(ledger.ticks),
        "duplicates": ok[("ingest", 409)],
        "capped": ledger.capped,
        "admin confirmations": ok[("confirm", 200)],
        "reversals": ok[("reverse", 200)],
        "job confirmations": audit["PURCHASE_CONFIRMED"],
        "job rejections": audit["PURCHASE_REJECTED"],
        "payouts": ok[("payout", 201)],
        "completed": audit["PAYOUT_COMPLETED"],
        "failed": audit["PAYOUT_FAILED"],
        "open payout refusals": sum(1 for a in ledger.answers if a == ("payout", 409, "PAYOUT_ALREADY_REQUESTED")),
    }
    assert all(exercised.values()), (seed, "this mix left something unexercised", exercised)
    assert 150 <= exercised["operations"] <= 300, (seed, exercised)
    return exercised


async def test_money_moves_under_concurrency_and_adds_up(client, conn, settings, admin, make_account):
    """One seeded mix (each wave's operations at once), then every named check of the count."""
    started = time.monotonic()
    mix = await set_up(client, conn, settings, admin, make_account)
    for _ in range(WAVES):
        await asyncio.gather(*mix.one_wave())

    answers_were_documented_and_ticks_settled(mix)
    rows = await one_purchase_per_accepted_external_id(mix, conn)
    await monthly_cap_held_and_totals_match(mix, conn, rows)
    payout_rows = await payouts_processed_at_most_once(mix, conn)
    await wallets_add_up(mix, conn, rows, payout_rows)
    audit = await one_audit_row_per_accepted_change(mix, conn, rows)
    exercised = the_mix_exercised_everything(mix, audit)
    elapsed = time.monotonic() - started
    assert elapsed < 30, (mix.seed, "took too long", elapsed)
    print(mix.seed, exercised, f"{elapsed:.1f}s", Counter(mix.ledger.answers))

"""Each money rule has one home: wallet balances change only in server/wallets/balances.py (querysets
on the Wallet model) and, as SQL, in the ingestion credit of record_purchase.sql; the cashback
functions are defined only in server/purchases/sql/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WALLET_WRITE = re.compile(r"\b(UPDATE\s+wallets|INSERT\s+INTO\s+wallets)\b", re.IGNORECASE)
# The demo seed (server/seed.py) loads fixed balances into an empty database: not a movement.
# The verification job's batch (server/wallets/sql/settle_verified.sql) is balances.settle_verified's.
WALLET_WRITERS = {"server/seed.py", "server/purchases/sql/record_purchase.sql",
                  "server/purchases/sql/record_purchase_summing.sql",
                  "server/wallets/sql/settle_verified.sql"}  # fmt: skip
WALLET_QUERYSET = re.compile(r"\bWallet\.")


def _sources() -> list[Path]:
    return [
        path
        for folder in ("server", "migrations", "deploy")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".sql"} and "__pycache__" not in path.parts
    ]


def test_wallet_balances_change_in_one_module():
    writers = {str(path.relative_to(ROOT)) for path in _sources() if WALLET_WRITE.search(path.read_text())}
    assert writers <= WALLET_WRITERS, writers - WALLET_WRITERS
    orm_users = {str(path.relative_to(ROOT)) for path in _sources() if WALLET_QUERYSET.search(path.read_text())}
    assert orm_users == {"server/wallets/balances.py"}, orm_users


def test_each_cashback_function_is_defined_in_one_file():
    for function in ("cashback_round_cents", "cashback_raw", "cashback_credited", "cashback_monthly_totals_follow"):
        pattern = re.compile(rf"CREATE (OR REPLACE )?FUNCTION {function}\(")
        homes = [str(path.relative_to(ROOT)) for path in _sources() if pattern.search(path.read_text())]
        assert len(homes) == 1 and homes[0].startswith("server/purchases/sql/"), (function, homes)

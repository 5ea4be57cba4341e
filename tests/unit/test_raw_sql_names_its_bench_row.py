"""Querysets by default (docs/adr/0002-orm-boundary-and-raw-sql.md): in the modules converted so far,
every SQL string is one a `make bench` row keeps, or one with no queryset form (a system catalog),
and says so in a comment just above it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONVERTED = [
    "server/auth/service.py",
    "server/auth/throttle.py",
    "server/users/service.py",
    "server/debug/routes.py",
    "server/pagination.py",
    "server/purchases/own_page.py",
    *(f"server/{name}/service.py" for name in ("audit", "flags", "merchants", "offers", "payouts", "wallets")),
]
# The reasons a raw statement may give: the bench row that keeps it, or that no queryset can say it.
REASONS = ("bench row", "no queryset form")
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


def _raw_statements(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value)
    ]


def test_each_raw_statement_names_the_bench_row_that_keeps_it():
    unnamed = []
    for name in CONVERTED:
        lines = (ROOT / name).read_text().splitlines()
        for lineno in _raw_statements(ROOT / name):
            above = lines[max(0, lineno - 4) : lineno - 1]
            if not any(line.strip().startswith("#") and any(r in line for r in REASONS) for line in above):
                unnamed.append(f"{name}:{lineno}")
    assert unnamed == []


def test_registration_and_refresh_tokens_run_no_raw_sql():
    for name in ("server/auth/service.py", "server/users/service.py"):
        source = (ROOT / name).read_text()
        assert _raw_statements(ROOT / name) == [], name
        assert "from server import db" not in source and "server.db" not in source, name

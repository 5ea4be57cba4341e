"""The shipped packages stand alone: no module-level import of the dev harness, the tests or the bench,
which `git archive` leaves out of a release (.gitattributes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = ("devtools", "tests", "bench")


def module_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["server", "deploy", "migrations"])
def test_shipped_modules_import_nothing_that_stays_behind(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in module_level_imports(path) if name.split(".")[0] in NOT_SHIPPED
        )
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}

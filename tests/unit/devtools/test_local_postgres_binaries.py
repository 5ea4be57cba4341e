"""Which PostgreSQL binaries the throwaway clusters (`invoke serve`, sandbox, tests) run from."""

from pathlib import Path

import pytest

from devtools import local_postgres
from devtools.local_postgres import LocalPostgresError, bundled_pg_bindir, find_pg_bindir


def fake_bindir(root: Path, name: str) -> Path:
    folder = root / name / "bin"
    folder.mkdir(parents=True)
    for binary in ("initdb", "postgres"):
        (folder / binary).write_text("")
    return folder


@pytest.fixture
def no_system_postgres(monkeypatch):
    monkeypatch.delenv("PG_BINDIR", raising=False)
    monkeypatch.setattr(local_postgres.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(local_postgres.shutil, "which", lambda name: None)


def test_the_system_binaries_win_over_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.delenv("PG_BINDIR", raising=False)
    older, newer = fake_bindir(tmp_path, "14"), fake_bindir(tmp_path, "15")
    monkeypatch.setattr(local_postgres.glob, "glob", lambda pattern: [str(older), str(newer)])
    assert find_pg_bindir() == newer


def test_a_machine_without_postgresql_falls_back_to_the_bundled_binaries(no_system_postgres):
    bundled = bundled_pg_bindir()
    assert bundled is not None and (bundled / "postgres").exists()  # pgserver, requirements-dev.lock
    assert find_pg_bindir() == bundled


def test_without_any_binaries_the_error_says_how_to_install_them(no_system_postgres, monkeypatch):
    monkeypatch.setattr(local_postgres, "bundled_pg_bindir", lambda: None)
    with pytest.raises(LocalPostgresError, match="apt-get install -y postgresql"):
        find_pg_bindir()

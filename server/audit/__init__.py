"""The append-only audit log (API.md §4.9)."""

from pathlib import Path

# The SQL the migrations apply by name: the trigger that keeps audit_day_counts.
SQL_DIR = Path(__file__).resolve().parent / "sql"

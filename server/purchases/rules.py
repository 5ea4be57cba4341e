"""The money rules that run inside PostgreSQL, one named .sql file each in server/purchases/sql/.

Ingestion runs in one statement inside PostgreSQL (docs/adr/0003-ingestion-inside-postgresql.md),
so the cashback calculation, the monthly cap and the order of the ingestion checks are SQL:
  cashback.sql                 cashback_round_cents, cashback_raw, cashback_credited (API.md §4.1)
  record_purchase.sql          checks 3-7 of API.md §3.5, then the capped credit
  monthly_totals_triggers.sql  keeps cashback_monthly_totals exact for every writer
  monthly_totals_backfill.sql  the totals counted from the purchases (migration 4, the ops rebuild)
  record_purchase_summing.sql  the body migration 3 installed, for it and for migration 4's downgrade
  purchase_counts_triggers.sql keeps purchase_month_counts (the lists' totals) exact for every writer
  purchase_counts_backfill.sql both counts counted from the purchases (migration 6, the ops rebuild)
  purchase_day_counts.sql      keeps purchase_day_counts (the admin list's totals) exact for every writer
Migrations apply them by name. A file applied by a migration changes only through a new migration
that applies it again (CREATE OR REPLACE), so a migrated database and a fresh one end up alike.
"""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"


def sql_file(name: str) -> str:
    """The text of server/purchases/sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")

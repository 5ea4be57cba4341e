"""Ids for the rows that arrive with every purchase (purchases, cashback_transactions, audit_logs):
version-4 UUIDs, as API.md §1 promises, whose first 48 bits are the time in milliseconds, so the
primary key indexes take new rows on their rightmost pages (docs/adr/0047-time-prefixed-ids.md).

The rule exists twice, and tests/integration/platform/test_time_prefixed_ids.py holds the two to
one layout: as SQL (server/sql/time_prefixed_uuid.sql, applied by migration 8) for the rows
PostgreSQL inserts on its own (record_purchase, the job's audit batch), and here for the rows
Tortoise creates, since Tortoise fills a primary key's default in Python before the INSERT."""

import time
from pathlib import Path
from uuid import UUID, uuid4

from tortoise.fields.db_defaults import SqlDefault

SQL_FILE = Path(__file__).resolve().parent / "sql" / "time_prefixed_uuid.sql"
TIME_PREFIXED_UUID = SqlDefault("time_prefixed_uuid()")


def time_prefixed_uuid() -> UUID:
    """A random UUID v4 with the current millisecond in its first 48 bits."""
    return UUID(bytes=(time.time_ns() // 1_000_000).to_bytes(6, "big") + uuid4().bytes[6:])

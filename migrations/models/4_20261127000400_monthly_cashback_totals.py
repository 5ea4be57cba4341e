"""The monthly cap reads a running total: cashback_monthly_totals, kept exact by a trigger.

record_purchase() (migration 3) computed `earned` (API.md §4.1 step 2) by summing this user's
pending and confirmed purchases of the offer created this UTC month, an index scan whose cost
grew with the user's purchases this month (0.84 ms of PostgreSQL CPU per call at 0-500 of them,
2.06 ms at 2,500-3,000). Now it reads one row of cashback_monthly_totals by primary key.

The table holds, per (user, offer, first day of the UTC month of created_at), the sum of
cashback_amount over the purchases that count: status pending or confirmed. The trigger
trg_purchases_monthly_totals keeps it exact for every writer (ingestion, the job's rejection, the
admin reversal, ops scripts, psql): after a row is inserted, updated or deleted, what the old row
counted leaves its month and what the new row counts joins its month, both as relative updates,
so concurrent writers never lose one. Its WHEN clauses skip the rows that change nothing counted
(a confirmation, a purchase credited 0.00, a change of another column). TRUNCATE purchases empties
the totals. The read in record_purchase stays exact because the caller's wallet lock, taken before
it, serializes every writer of that user's counted amounts (recording, rejection, reversal), and
the trigger adds the new purchase in the recording's own transaction.

One copy of each body of record_purchase: the old one is migration 3's text, read from its
upgrade() (the downgrade restores it, so migration 3's function keeps working after a downgrade);
the new one is that text with the `earned` subquery replaced, checked to occur exactly once.
No Tortoise model for the table (the service talks SQL through asyncpg), so the models' state is
migration 3's, taken from its module.
"""

import importlib.util
from pathlib import Path

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


def _migration_3():
    # Aerich loads migration files by path, not as package members (their names start with a
    # digit), so this one loads its predecessor the same way.
    path = Path(__file__).with_name("3_20261127000300_ingest_in_one_statement.py")
    spec = importlib.util.spec_from_file_location("clicknback_migration_3", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_M3 = _migration_3()

# migration 3's `earned`: a sum over the purchases, linear in the user's purchases this month ...
_SUM_EARNED = """\
           (SELECT coalesce(sum(e.cashback_amount), 0) FROM purchases AS e
            WHERE e.user_id = p_user AND e.offer_id = o.id AND e.status IN ('pending', 'confirmed')
              AND e.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
              AND e.created_at < (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')
                                 AT TIME ZONE 'UTC') AS earned
"""
# ... and this migration's: one row by primary key; no row yet means nothing earned.
_TOTAL_EARNED = """\
           coalesce((SELECT t.earned FROM cashback_monthly_totals AS t
                     WHERE t.user_id = p_user AND t.offer_id = o.id
                       AND t.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0) AS earned
"""


async def _record_purchase_of_migration_3(db: BaseDBAsyncClient) -> str:
    """Migration 3's CREATE FUNCTION record_purchase, as CREATE OR REPLACE."""
    sql = await _M3.upgrade(db)
    head = "CREATE FUNCTION record_purchase("
    if sql.count(head) != 1:
        raise RuntimeError("migration 3 no longer defines record_purchase once")
    return "CREATE OR REPLACE FUNCTION record_purchase(" + sql.split(head, 1)[1]


async def _record_purchase_reading_totals(db: BaseDBAsyncClient) -> str:
    old = await _record_purchase_of_migration_3(db)
    if old.count(_SUM_EARNED) != 1:
        raise RuntimeError("migration 3's record_purchase no longer computes `earned` as this migration expects")
    return old.replace(_SUM_EARNED, _TOTAL_EARNED)


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
-- No purchase changes between the backfill and the trigger: both are done under this lock, which
-- waits for the writers in flight and is held until the migration commits.
LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE cashback_monthly_totals (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    offer_id uuid NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    month date NOT NULL,
    earned numeric(19,2) NOT NULL DEFAULT 0 CONSTRAINT ck_cashback_monthly_totals_earned CHECK (earned >= 0),
    CONSTRAINT pk_cashback_monthly_totals PRIMARY KEY (user_id, offer_id, month)
);

-- What the old row counted leaves its month; what the new row counts joins its month. A row counts
-- its cashback_amount while pending or confirmed, toward the UTC month of its created_at. Both are
-- relative updates under the total's row lock. A decrement is an UPDATE, never an INSERT ... ON
-- CONFLICT: PostgreSQL checks the proposed row (a negative total) before it sees the conflict. A
-- counted row whose total is missing means the totals were changed behind the trigger's back:
-- refuse rather than guess.
CREATE FUNCTION cashback_monthly_totals_follow() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status IN ('pending', 'confirmed') AND OLD.cashback_amount <> 0 THEN
        UPDATE cashback_monthly_totals SET earned = earned - OLD.cashback_amount
        WHERE user_id = OLD.user_id AND offer_id = OLD.offer_id
          AND month = date_trunc('month', OLD.created_at AT TIME ZONE 'UTC')::date;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'cashback_monthly_totals has no total for purchase % (user %, offer %)',
                OLD.id, OLD.user_id, OLD.offer_id
                USING ERRCODE = 'data_corrupted';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status IN ('pending', 'confirmed') AND NEW.cashback_amount <> 0 THEN
        INSERT INTO cashback_monthly_totals (user_id, offer_id, month, earned)
        VALUES (NEW.user_id, NEW.offer_id, date_trunc('month', NEW.created_at AT TIME ZONE 'UTC')::date,
                NEW.cashback_amount)
        ON CONFLICT (user_id, offer_id, month)
            DO UPDATE SET earned = cashback_monthly_totals.earned + EXCLUDED.earned;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION cashback_monthly_totals_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM cashback_monthly_totals;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER trg_purchases_monthly_totals_insert AFTER INSERT ON purchases
    FOR EACH ROW WHEN (NEW.status IN ('pending', 'confirmed') AND NEW.cashback_amount <> 0)
    EXECUTE FUNCTION cashback_monthly_totals_follow();
-- user_id, offer_id and created_at too: they say which total a counted row is in (tests and ops
-- move purchases between months by updating created_at).
CREATE TRIGGER trg_purchases_monthly_totals_update
    AFTER UPDATE OF status, cashback_amount, user_id, offer_id, created_at ON purchases
    FOR EACH ROW WHEN (
        (CASE WHEN OLD.status IN ('pending', 'confirmed') THEN OLD.cashback_amount ELSE 0 END)
            <> (CASE WHEN NEW.status IN ('pending', 'confirmed') THEN NEW.cashback_amount ELSE 0 END)
        OR (OLD.status IN ('pending', 'confirmed') AND OLD.cashback_amount <> 0
            AND (OLD.user_id, OLD.offer_id, OLD.created_at)
                IS DISTINCT FROM (NEW.user_id, NEW.offer_id, NEW.created_at))
    )
    EXECUTE FUNCTION cashback_monthly_totals_follow();
CREATE TRIGGER trg_purchases_monthly_totals_delete AFTER DELETE ON purchases
    FOR EACH ROW WHEN (OLD.status IN ('pending', 'confirmed') AND OLD.cashback_amount <> 0)
    EXECUTE FUNCTION cashback_monthly_totals_follow();
CREATE TRIGGER trg_purchases_monthly_totals_truncate AFTER TRUNCATE ON purchases
    FOR EACH STATEMENT EXECUTE FUNCTION cashback_monthly_totals_truncate();

-- The totals of the purchases already there, counted as the trigger counts them.
INSERT INTO cashback_monthly_totals (user_id, offer_id, month, earned)
SELECT user_id, offer_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, sum(cashback_amount)
FROM purchases
WHERE status IN ('pending', 'confirmed') AND cashback_amount <> 0
GROUP BY 1, 2, 3;

-- record_purchase reads `earned` from the totals, in the statement after the wallet lock.
""" + await _record_purchase_reading_totals(db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_truncate ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_delete ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_update ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_insert ON purchases;
DROP FUNCTION IF EXISTS cashback_monthly_totals_truncate();
DROP FUNCTION IF EXISTS cashback_monthly_totals_follow();
DROP TABLE IF EXISTS cashback_monthly_totals;
-- Migration 3's record_purchase, which sums the purchases again.
""" + await _record_purchase_of_migration_3(db)


MODELS_STATE = _M3.MODELS_STATE

-- The triggers that keep cashback_monthly_totals exact for every writer of purchases.
-- Applied by name by migration 4.

-- What the old row counted leaves its month; what the new row counts joins its month. A row counts
-- its cashback_amount while pending or confirmed, toward the UTC month of its created_at. Both are
-- relative updates under the total's row lock. A decrement is an UPDATE, never an INSERT ... ON
-- CONFLICT: PostgreSQL checks the proposed row (a negative total) before it sees the conflict. A
-- counted row whose total is missing means the totals were changed behind the trigger's back:
-- refuse rather than guess.
CREATE OR REPLACE FUNCTION cashback_monthly_totals_follow() RETURNS trigger
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

CREATE OR REPLACE FUNCTION cashback_monthly_totals_truncate() RETURNS trigger
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

-- The triggers that keep purchase_month_counts exact for every writer of purchases (ingestion, the
-- verification job, admin transitions, ops scripts, psql). Applied by name by migration 6.

-- The old row leaves its (user, UTC month of created_at, status) count; the new row joins its own.
-- Both are relative updates under the count's row lock, so concurrent writers never lose one; the
-- writers already hold the user's wallet lock, so these rows add no new waits between users. A
-- decrement is an UPDATE, never an INSERT ... ON CONFLICT: PostgreSQL checks the proposed row
-- before it sees the conflict. A row whose count is missing (or already 0, refused by the CHECK)
-- means the counts were changed behind the trigger's back: refuse rather than guess.
CREATE OR REPLACE FUNCTION purchase_month_counts_follow() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE purchase_month_counts SET n = n - 1
        WHERE user_id = OLD.user_id AND month = date_trunc('month', OLD.created_at AT TIME ZONE 'UTC')::date
          AND status = OLD.status;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'purchase_month_counts has no count for purchase % (user %, status %)',
                OLD.id, OLD.user_id, OLD.status
                USING ERRCODE = 'data_corrupted';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO purchase_month_counts (user_id, month, status, n)
        VALUES (NEW.user_id, date_trunc('month', NEW.created_at AT TIME ZONE 'UTC')::date, NEW.status, 1)
        ON CONFLICT (user_id, month, status) DO UPDATE SET n = purchase_month_counts.n + 1;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION purchase_month_counts_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM purchase_month_counts;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER trg_purchases_month_counts_insert AFTER INSERT ON purchases
    FOR EACH ROW EXECUTE FUNCTION purchase_month_counts_follow();
-- Only a change of what names the count: a confirmation moves one purchase between two counts; a
-- change of the verification columns or of created_at within its month changes none.
CREATE TRIGGER trg_purchases_month_counts_update AFTER UPDATE OF status, user_id, created_at ON purchases
    FOR EACH ROW WHEN (
        (OLD.user_id, OLD.status, date_trunc('month', OLD.created_at AT TIME ZONE 'UTC'))
            IS DISTINCT FROM (NEW.user_id, NEW.status, date_trunc('month', NEW.created_at AT TIME ZONE 'UTC'))
    )
    EXECUTE FUNCTION purchase_month_counts_follow();
CREATE TRIGGER trg_purchases_month_counts_delete AFTER DELETE ON purchases
    FOR EACH ROW EXECUTE FUNCTION purchase_month_counts_follow();
CREATE TRIGGER trg_purchases_month_counts_truncate AFTER TRUNCATE ON purchases
    FOR EACH STATEMENT EXECUTE FUNCTION purchase_month_counts_truncate();

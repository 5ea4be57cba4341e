-- purchase_day_counts: per (UTC day of created_at, status, slot), how many purchases there are, kept by
-- triggers for every writer of purchases; the admin purchase list filtered by status and dates sums
-- it. Applied by name by migration 6, with purchase_counts_backfill.sql, under the same lock.

-- Each change adds +1 or -1 to the writing session's own slot (pg_backend_pid() % 64) as a relative
-- upsert. Only the sum over a (day, status)'s slots means anything; one slot may go negative (a
-- purchase counted in one session's slot, changed in another's). So no two sessions ever wait
-- for each other on these rows, whatever they write. 64 slots on a table stored at fillfactor 10
-- (migration 6) give each hot row a page nearly to itself: 8 slots on one page cost ingestion a
-- fifth of its throughput (docs/adr/0030-exact-totals-in-constant-time.md).
CREATE OR REPLACE FUNCTION purchase_day_counts_follow() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO purchase_day_counts (day, status, slot, n)
        VALUES ((OLD.created_at AT TIME ZONE 'UTC')::date, OLD.status, pg_backend_pid() % 64, -1)
        ON CONFLICT (day, status, slot) DO UPDATE SET n = purchase_day_counts.n - 1;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO purchase_day_counts (day, status, slot, n)
        VALUES ((NEW.created_at AT TIME ZONE 'UTC')::date, NEW.status, pg_backend_pid() % 64, 1)
        ON CONFLICT (day, status, slot) DO UPDATE SET n = purchase_day_counts.n + 1;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION purchase_day_counts_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM purchase_day_counts;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER trg_purchases_day_counts_insert AFTER INSERT ON purchases
    FOR EACH ROW EXECUTE FUNCTION purchase_day_counts_follow();
CREATE TRIGGER trg_purchases_day_counts_update AFTER UPDATE OF status, created_at ON purchases
    FOR EACH ROW WHEN (
        (OLD.status, (OLD.created_at AT TIME ZONE 'UTC')::date)
            IS DISTINCT FROM (NEW.status, (NEW.created_at AT TIME ZONE 'UTC')::date)
    )
    EXECUTE FUNCTION purchase_day_counts_follow();
CREATE TRIGGER trg_purchases_day_counts_delete AFTER DELETE ON purchases
    FOR EACH ROW EXECUTE FUNCTION purchase_day_counts_follow();
CREATE TRIGGER trg_purchases_day_counts_truncate AFTER TRUNCATE ON purchases
    FOR EACH STATEMENT EXECUTE FUNCTION purchase_day_counts_truncate();

-- audit_day_counts: per (UTC day of occurred_at, action, slot), how many audit rows there are, kept
-- by a trigger for every writer. Applied by name by migration 6.

-- audit_logs is append-only (migration 1), so a count only ever grows: one relative upsert per row.
-- The slot is the writing session's (pg_backend_pid() % 8): a session never waits for itself, and
-- eight rows per busy (day, action) let concurrent writers (the job's confirmations) commit without
-- queueing on one row lock until each other's WAL flush.
CREATE OR REPLACE FUNCTION audit_day_counts_follow() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO audit_day_counts (day, action, slot, n)
    VALUES ((NEW.occurred_at AT TIME ZONE 'UTC')::date, NEW.action, pg_backend_pid() % 8, 1)
    ON CONFLICT (day, action, slot) DO UPDATE SET n = audit_day_counts.n + 1;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER trg_audit_logs_day_counts AFTER INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_day_counts_follow();

-- The rows already there, counted as the trigger counts them (slot 0).
INSERT INTO audit_day_counts (day, action, slot, n)
SELECT (occurred_at AT TIME ZONE 'UTC')::date, action, 0, count(*)
FROM audit_logs
GROUP BY 1, 2;

-- The counts of the purchases already there, counted as the triggers count them (the day counts in
-- slot 0). Run by migration 6, once, into the new tables, under its lock on purchases, and by the
-- ops rebuild (server/purchases/cap_totals.py) into emptied ones.
INSERT INTO purchase_month_counts (user_id, month, status, n)
SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, status, count(*)
FROM purchases
GROUP BY 1, 2, 3;

INSERT INTO purchase_day_counts (day, status, slot, n)
SELECT (created_at AT TIME ZONE 'UTC')::date, status, 0, count(*)
FROM purchases
GROUP BY 1, 2;

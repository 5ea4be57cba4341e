-- The counts of the purchases already there, counted as the triggers count them. Run by migration
-- 7, once, into the new table, under its lock on purchases.
INSERT INTO purchase_month_counts (user_id, month, status, n)
SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, status, count(*)
FROM purchases
GROUP BY 1, 2, 3;

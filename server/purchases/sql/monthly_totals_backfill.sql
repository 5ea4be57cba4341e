-- The totals of the purchases already there, counted as the trigger counts them. Run by
-- migration 4 (once, into the new table) and by the ops rebuild (server/purchases/cap_totals.py).
INSERT INTO cashback_monthly_totals (user_id, offer_id, month, earned)
SELECT user_id, offer_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, sum(cashback_amount)
FROM purchases
WHERE status IN ('pending', 'confirmed') AND cashback_amount <> 0
GROUP BY 1, 2, 3;

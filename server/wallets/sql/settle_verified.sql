-- The verification job's movements of one batch (balances.settle_verified): per wallet, the cashback
-- its confirmed and rejected purchases take out of pending, and the confirmed part that joins
-- available, as one relative UPDATE. Raw because each wallet moves by its own amounts, which a
-- queryset says only as one UPDATE per wallet; bench row job_backlog (bench/backlog.py,
-- bench/job_alone.py) keeps it.
UPDATE wallets AS w
SET pending_balance = w.pending_balance - m.pending_out,
    available_balance = w.available_balance + m.available_in,
    updated_at = now()
FROM unnest($1::uuid[], $2::numeric[], $3::numeric[]) AS m (user_id, pending_out, available_in)
WHERE w.user_id = m.user_id

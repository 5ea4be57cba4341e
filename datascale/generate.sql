-- The data-scale database (issue #24): users, merchants with one active offer each, purchases with
-- their cashback transactions, payouts, audit rows, monthly cap totals and wallets, generated
-- set-based and deterministic for a given :anchor. datascale/__init__.py runs the steps in order on
-- one connection, after the migrations, and substitutes the :names with literals.
--
-- Shape: user 1 is the heavy user (every :heavy_every-th purchase slot); the others share the rest
-- round-robin; slot i is also the time order, spread evenly over :span_seconds before :anchor. The
-- newest :pending_tail purchases are pending; of the older ones about 2% were rejected by the job,
-- 3% confirmed then reversed by an admin, the rest confirmed (2% of those by an admin).
-- Triggers and foreign-key checks are off for this session (replica role): the monthly cap totals
-- and wallets are computed here in one pass each, and every reference is built from the same keys
-- as its target. The tests check the invariants on the result.

-- step: session
SET session_replication_role = replica;
SET synchronous_commit = off;

-- step: plan
-- One row per purchase slot; read three times (purchases, transactions, audit), never stored.
CREATE TEMP VIEW scale_purchases AS
SELECT g.i, g.u, g.m, g.status, g.by_admin, g.created_at,
       md5('scale-purchase-' || g.i)::uuid AS id,
       'scale-' || lpad(g.i::text, 10, '0') AS external_id,
       md5('scale-user-' || g.u)::uuid AS user_id,
       md5('scale-merchant-' || g.m)::uuid AS merchant_id,
       md5('scale-offer-' || g.m)::uuid AS offer_id,
       (g.cents * 0.01)::numeric(19,2) AS amount,
       -- API.md §4.1: a fixed amount (every 10th merchant: 1.50), else cents x percentage / 100
       -- rounded half to even, in integer cents; the cap (500.00 a month) is never reached here.
       (CASE WHEN g.m % 10 = 0 THEN 150
             ELSE (g.cents * (g.m % 10)) / 100
                  + CASE WHEN (g.cents * (g.m % 10)) % 100 > 50
                           OR ((g.cents * (g.m % 10)) % 100 = 50 AND ((g.cents * (g.m % 10)) / 100) % 2 = 1)
                         THEN 1 ELSE 0 END
        END * 0.01)::numeric(19,2) AS credited,
       CASE g.status WHEN 'confirmed' THEN g.created_at + interval '60 seconds'
                     WHEN 'rejected' THEN g.created_at + interval '120 seconds'
                     WHEN 'reversed' THEN least(g.created_at + interval '7 days', :anchor::timestamptz)
                     ELSE g.created_at END AS updated_at
FROM (
    SELECT s.i,
           CASE WHEN s.i % :heavy_every = 0 THEN 1 ELSE 2 + (s.i - s.i / :heavy_every) % (:users - 1) END AS u,
           1 + (hashint8extended(s.i, 1) & 9223372036854775807) % :merchants AS m,
           500 + (hashint8extended(s.i, 2) & 9223372036854775807) % 19500 AS cents,
           CASE WHEN s.i > :purchases - :pending_tail THEN 'pending'
                WHEN (hashint8extended(s.i, 3) & 9223372036854775807) % 100 < 2 THEN 'rejected'
                WHEN (hashint8extended(s.i, 3) & 9223372036854775807) % 100 < 5 THEN 'reversed'
                ELSE 'confirmed' END AS status,
           (hashint8extended(s.i, 4) & 9223372036854775807) % 50 = 0 AS by_admin,
           :anchor::timestamptz - make_interval(secs => :span_seconds)
               + make_interval(secs => s.i * (:span_seconds::float8 / :purchases)) AS created_at
    FROM generate_series(1::bigint, :purchases) AS s (i)
) AS g;

-- step: users
INSERT INTO users (id, email, hashed_password, role, created_at)
SELECT md5('scale-user-' || n)::uuid,
       CASE WHEN n = 1 THEN 'heavy@example.test'
            WHEN n <= 33 THEN 'bench' || (n - 2) || '@example.test'
            ELSE 'scale' || n || '@example.test' END,
       '!no-login', 'user',
       :anchor::timestamptz - make_interval(secs => :span_seconds) - interval '30 days' + make_interval(secs => n)
FROM generate_series(1, :users) AS n
UNION ALL
SELECT md5('scale-admin')::uuid, 'scale-admin@example.test', '!no-login', 'admin',
       :anchor::timestamptz - make_interval(secs => :span_seconds) - interval '60 days';

-- step: merchants
INSERT INTO merchants (id, name, default_cashback_percentage, active, created_at)
SELECT md5('scale-merchant-' || m)::uuid, 'Scale Merchant ' || lpad(m::text, 5, '0'), m % 10, true,
       :anchor::timestamptz - make_interval(secs => :span_seconds) - interval '45 days'
FROM generate_series(1, :merchants) AS m;
INSERT INTO offers (id, merchant_id, percentage, fixed_amount, start_date, end_date, monthly_cap_per_user, active, created_at)
SELECT md5('scale-offer-' || m)::uuid, md5('scale-merchant-' || m)::uuid,
       CASE WHEN m % 10 = 0 THEN 0 ELSE m % 10 END, CASE WHEN m % 10 = 0 THEN 1.50 END,
       (:anchor::timestamptz - make_interval(secs => :span_seconds) - interval '1 day')::date,
       (:anchor::timestamptz + interval '365 days')::date, 500.00, true,
       :anchor::timestamptz - make_interval(secs => :span_seconds) - interval '45 days'
FROM generate_series(1, :merchants) AS m;

-- step: purchases
INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, status,
                       cashback_amount, verification_attempts, next_verification_at, created_at, updated_at)
SELECT id, external_id, user_id, merchant_id, offer_id, amount, 'EUR', status,
       CASE WHEN status = 'reversed' THEN 0.00 ELSE credited END,
       CASE WHEN status = 'rejected' THEN 3 ELSE 0 END,
       CASE WHEN status = 'rejected' THEN created_at + interval '120 seconds' ELSE created_at END,
       created_at, updated_at
FROM scale_purchases;

-- step: cashback transactions
INSERT INTO cashback_transactions (user_id, purchase_id, amount, status, created_at, updated_at)
SELECT user_id, id, credited,
       CASE status WHEN 'pending' THEN 'pending' WHEN 'confirmed' THEN 'available' ELSE 'reversed' END,
       created_at, updated_at
FROM scale_purchases;

-- step: purchase audit
INSERT INTO audit_logs (occurred_at, actor_type, actor_id, action, resource_type, resource_id, details)
SELECT e.occurred_at, e.actor_type, CASE WHEN e.actor_type = 'admin' THEN md5('scale-admin')::uuid END,
       e.action, 'purchase', p.id, e.details
FROM scale_purchases AS p
CROSS JOIN LATERAL (
    SELECT p.created_at + interval '60 seconds' AS occurred_at,
           CASE WHEN p.by_admin THEN 'admin' ELSE 'system' END AS actor_type,
           CASE WHEN p.by_admin THEN 'PURCHASE_CONFIRMED_BY_ADMIN' ELSE 'PURCHASE_CONFIRMED' END AS action,
           jsonb_build_object('merchant_id', p.merchant_id::text, 'amount', p.amount::text, 'currency', 'EUR',
                              'cashback_amount', p.credited::text) AS details
    WHERE p.status IN ('confirmed', 'reversed')
    UNION ALL
    SELECT p.created_at + interval '120 seconds', 'system', 'PURCHASE_REJECTED',
           jsonb_build_object('merchant_id', p.merchant_id::text, 'amount', p.amount::text, 'currency', 'EUR',
                              'cashback_amount', p.credited::text,
                              'reason', 'Bank reconciliation failed: no matching bank movement found after 3 verification attempt(s).',
                              'attempts', 3)
    WHERE p.status = 'rejected'
    UNION ALL
    SELECT p.updated_at, 'admin', 'PURCHASE_REVERSED',
           jsonb_build_object('prior_status', 'confirmed', 'reversed_cashback_amount', p.credited::text)
    WHERE p.status = 'reversed'
) AS e;

-- step: monthly cap totals
INSERT INTO cashback_monthly_totals (user_id, offer_id, month, earned)
SELECT user_id, offer_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, sum(credited)
FROM scale_purchases
WHERE status IN ('pending', 'confirmed') AND credited <> 0
GROUP BY 1, 2, 3;

-- step: purchase counts
-- What the triggers of migration 6 would have counted, had they been on.
INSERT INTO purchase_month_counts (user_id, month, status, n)
SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, status, count(*)
FROM scale_purchases
GROUP BY 1, 2, 3;

-- step: purchase day counts
INSERT INTO purchase_day_counts (day, status, slot, n)
SELECT (created_at AT TIME ZONE 'UTC')::date, status, 0, count(*)
FROM scale_purchases
GROUP BY 1, 2;

-- step: credits per user
CREATE TEMP TABLE scale_user_credit AS
SELECT u, user_id,
       coalesce(sum(credited) FILTER (WHERE status = 'pending'), 0) AS pending,
       coalesce(sum(credited) FILTER (WHERE status = 'confirmed'), 0) AS available
FROM scale_purchases
GROUP BY u, user_id;

-- step: payouts
-- At most 70% of what a user earned leaves as completed or requested payouts, so no balance goes
-- negative; every 7th user also has a failed one, every 10th one still requested.
INSERT INTO payouts (user_id, amount, status, requested_at, processed_at, processed_by, external_reference)
SELECT c.user_id, x.amount, x.status, x.requested_at,
       CASE WHEN x.status <> 'requested' THEN x.requested_at + interval '1 day' END,
       CASE WHEN x.status <> 'requested' THEN md5('scale-admin')::uuid END,
       CASE WHEN x.status = 'completed' THEN 'scale-ref-' || c.u || '-' || x.k END
FROM scale_user_credit AS c
CROSS JOIN LATERAL (VALUES
    (1, 'completed', trunc(c.available * 0.3, 2), :anchor::timestamptz - make_interval(days => 300 + (c.u % 60)::int)),
    (2, 'completed', CASE WHEN c.u % 3 = 0 THEN trunc(c.available * 0.15, 2) END,
        :anchor::timestamptz - make_interval(days => 150 + (c.u % 60)::int)),
    (3, 'failed', CASE WHEN c.u % 7 = 0 AND c.available >= 10 THEN 10.00 END,
        :anchor::timestamptz - make_interval(days => 60 + (c.u % 30)::int)),
    (4, 'requested', CASE WHEN c.u % 10 = 0 THEN trunc(c.available * 0.25, 2) END,
        :anchor::timestamptz - make_interval(hours => 1 + (c.u % 48)::int))
) AS x (k, status, amount, requested_at)
WHERE x.amount >= 10;

-- step: payout audit
INSERT INTO audit_logs (occurred_at, actor_type, actor_id, action, resource_type, resource_id, details)
SELECT p.requested_at, 'user', p.user_id, 'PAYOUT_REQUESTED', 'payout', p.id,
       jsonb_build_object('amount', p.amount::text,
                          'available_balance_after', (c.available - sum(p.amount) OVER (
                              PARTITION BY p.user_id ORDER BY p.requested_at, p.id))::text)
FROM payouts AS p JOIN scale_user_credit AS c USING (user_id)
UNION ALL
SELECT p.processed_at, 'admin', md5('scale-admin')::uuid,
       CASE p.status WHEN 'completed' THEN 'PAYOUT_COMPLETED' ELSE 'PAYOUT_FAILED' END, 'payout', p.id,
       jsonb_build_object('user_id', p.user_id::text, 'amount', p.amount::text,
                          'external_reference', p.external_reference)
FROM payouts AS p JOIN scale_user_credit AS c USING (user_id)
WHERE p.status <> 'requested';

-- step: catalogue audit
INSERT INTO audit_logs (occurred_at, actor_type, actor_id, action, resource_type, resource_id, details)
SELECT m.created_at, 'admin', md5('scale-admin')::uuid, 'MERCHANT_CREATED', 'merchant', m.id,
       jsonb_build_object('name', m.name, 'default_cashback_percentage', m.default_cashback_percentage::text,
                          'active', m.active)
FROM merchants AS m JOIN generate_series(1, :merchants) AS n ON m.id = md5('scale-merchant-' || n)::uuid
UNION ALL
SELECT o.created_at, 'admin', md5('scale-admin')::uuid, 'OFFER_CREATED', 'offer', o.id,
       jsonb_build_object('merchant_id', o.merchant_id::text,
                          'cashback_type', CASE WHEN o.fixed_amount IS NULL THEN 'percent' ELSE 'fixed' END,
                          'cashback_value', coalesce(o.fixed_amount, o.percentage)::text,
                          'start_date', o.start_date, 'end_date', o.end_date,
                          'monthly_cap', o.monthly_cap_per_user::text)
FROM offers AS o JOIN generate_series(1, :merchants) AS n ON o.id = md5('scale-offer-' || n)::uuid;

-- step: audit counts
-- What the trigger of migration 6 would have counted, had it been on (slot 0).
INSERT INTO audit_day_counts (day, action, slot, n)
SELECT (occurred_at AT TIME ZONE 'UTC')::date, action, 0, count(*)
FROM audit_logs
GROUP BY 1, 2;

-- step: wallets
-- API.md §4.5: pending = pending credits; available = available credits - requested and completed
-- payouts; paid = completed payouts. The admin has an empty wallet, as every registered user.
INSERT INTO wallets (user_id, pending_balance, available_balance, paid_balance, updated_at)
SELECT u.id, coalesce(c.pending, 0), coalesce(c.available, 0) - coalesce(d.withdrawn, 0), coalesce(d.paid, 0),
       :anchor::timestamptz
FROM (SELECT md5('scale-user-' || n)::uuid AS id FROM generate_series(1, :users) AS n
      UNION ALL SELECT md5('scale-admin')::uuid) AS u
LEFT JOIN scale_user_credit AS c ON c.user_id = u.id
LEFT JOIN (SELECT user_id,
                  sum(amount) FILTER (WHERE status IN ('requested', 'completed')) AS withdrawn,
                  sum(amount) FILTER (WHERE status = 'completed') AS paid
           FROM payouts GROUP BY user_id) AS d ON d.user_id = u.id;

-- step: done
DROP TABLE scale_user_credit;
DROP VIEW scale_purchases;
RESET session_replication_role;

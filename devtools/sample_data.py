"""Consistent sample rows in every table of the real schema, for the backup tests and the backup bench."""


def sample_data_sql(users: int, purchases: int, audit_rows: int) -> str:
    """Consistent sample rows in every table (wallets match their transactions and payouts).

    Deterministic ids (md5 of a label) so foreign keys always point at existing rows.
    """
    merchants = max(3, min(200, users // 10))
    return f"""
INSERT INTO users (id, email, hashed_password, role, active, created_at)
SELECT md5('u' || i)::uuid, 'user' || i || '@example.test', '$argon2id$v=19$m=65536,t=3,p=4$' || md5('pw' || i),
       CASE WHEN i = 1 OR i % 97 = 0 THEN 'admin' ELSE 'user' END, i % 53 <> 0,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '7 minutes'
FROM generate_series(1, {users}) AS i;

INSERT INTO merchants (id, name, default_cashback_percentage, active)
SELECT md5('m' || i)::uuid, 'Merchant ' || i, (i % 20) + 0.5, i % 11 <> 0 FROM generate_series(1, {merchants}) AS i;

INSERT INTO offers (id, merchant_id, percentage, fixed_amount, start_date, end_date, monthly_cap_per_user)
SELECT md5('o' || i)::uuid, md5('m' || i)::uuid, (i % 15) + 1.25, CASE WHEN i % 3 = 0 THEN 2.50 END,
       date '2026-01-01', date '2026-12-31', 150.00
FROM generate_series(1, {merchants}) AS i;

INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, status, cashback_amount,
                       verification_attempts, created_at, updated_at)
SELECT md5('p' || i)::uuid, 'ext-' || i, md5('u' || (1 + i % {users}))::uuid, md5('m' || (1 + i % {merchants}))::uuid,
       md5('o' || (1 + i % {merchants}))::uuid, round(10 + ((i * 37) % 50000) / 100.0, 2), 'EUR',
       (ARRAY['pending', 'confirmed', 'rejected', 'reversed'])[1 + i % 4],
       CASE WHEN i % 4 = 2 THEN 0 ELSE round((10 + ((i * 37) % 50000) / 100.0) * 0.05, 2) END,
       i % 5, timestamptz '2026-02-01 00:00:00+00' + i * interval '13 seconds',
       timestamptz '2026-02-01 00:00:00+00' + i * interval '13 seconds'
FROM generate_series(1, {purchases}) AS i;

INSERT INTO cashback_transactions (user_id, purchase_id, amount, status, created_at, updated_at)
SELECT user_id, id, cashback_amount,
       CASE status WHEN 'pending' THEN 'pending' WHEN 'confirmed' THEN 'available' ELSE 'reversed' END,
       created_at, updated_at
FROM purchases WHERE status <> 'rejected';

INSERT INTO payouts (user_id, amount, status, requested_at, processed_at, processed_by, external_reference)
SELECT user_id, round(available / 2, 2), CASE WHEN n % 2 = 0 THEN 'completed' ELSE 'requested' END,
       timestamptz '2026-06-01 00:00:00+00', CASE WHEN n % 2 = 0 THEN timestamptz '2026-06-02 00:00:00+00' END,
       CASE WHEN n % 2 = 0 THEN md5('u1')::uuid END, CASE WHEN n % 2 = 0 THEN 'bank-' || n END
FROM (SELECT user_id, sum(amount) AS available, row_number() OVER (ORDER BY user_id) AS n
      FROM cashback_transactions WHERE status = 'available' GROUP BY user_id HAVING sum(amount) >= 0.02) AS a
WHERE n % 3 = 0;

INSERT INTO wallets (user_id, pending_balance, available_balance, paid_balance)
SELECT u.id,
       coalesce((SELECT sum(amount) FROM cashback_transactions t WHERE t.user_id = u.id AND t.status = 'pending'), 0),
       coalesce((SELECT sum(amount) FROM cashback_transactions t WHERE t.user_id = u.id AND t.status = 'available'), 0)
         - coalesce((SELECT sum(amount) FROM payouts p WHERE p.user_id = u.id AND p.status <> 'failed'), 0),
       coalesce((SELECT sum(amount) FROM payouts p WHERE p.user_id = u.id AND p.status = 'completed'), 0)
FROM users u;

INSERT INTO audit_logs (occurred_at, actor_type, actor_id, action, resource_type, resource_id, outcome, details)
SELECT timestamptz '2026-03-01 00:00:00+00' + i * interval '11 seconds',
       CASE WHEN i % 3 = 0 THEN 'system' ELSE 'admin' END, CASE WHEN i % 3 = 0 THEN NULL ELSE md5('u1')::uuid END,
       'purchase.verify', 'purchase', md5('p' || (1 + i % {purchases}))::uuid,
       CASE WHEN i % 17 = 0 THEN 'failure' ELSE 'success' END,
       jsonb_build_object('attempt', i % 5, 'note', 'sample ' || i, 'amount', ((i * 7) % 1000) / 100.0)
FROM generate_series(1, {audit_rows}) AS i;

INSERT INTO feature_flags (key, enabled, scope_type, scope_id, description)
VALUES ('purchase_verification', true, 'global', NULL, 'sample'),
       ('payouts', false, 'merchant', md5('m1')::uuid, NULL),
       ('new_wallet_ui', true, 'user', md5('u1')::uuid, 'pilot');

INSERT INTO refresh_tokens (user_id, token_hash, issued_at, expires_at, used_at)
SELECT md5('u' || i)::uuid, encode(sha256(('token' || i)::bytea), 'hex'), timestamptz '2026-11-01 00:00:00+00',
       timestamptz '2026-12-01 00:00:00+00', CASE WHEN i % 2 = 0 THEN timestamptz '2026-11-02 00:00:00+00' END
FROM generate_series(1, greatest(1, {users} / 4)) AS i;

INSERT INTO login_attempts (email, attempted_at, ip)
SELECT 'user' || i || '@example.test', timestamptz '2026-11-20 00:00:00+00' + i * interval '1 second',
       CASE WHEN i % 4 = 0 THEN NULL ELSE ('10.0.' || (i % 250) || '.' || (1 + i % 250))::inet END
FROM generate_series(1, greatest(1, {users} / 2)) AS i;
ANALYZE;
"""

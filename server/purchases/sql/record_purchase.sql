-- record_purchase: ingestion checks 3-7 of API.md §3.5 and the capped credit (§4.1), reading
-- `earned` from cashback_monthly_totals (one row by primary key). Applied by name by migrations 4 and 8.

-- POST /api/v1/purchases after authentication and the ownership check, as one statement: one
-- round trip instead of four, and the caller's wallet row lock held only while this runs inside
-- the server, never across the network or the app's event loop. Call it outside an explicit
-- transaction, in READ COMMITTED (the default):
--   SELECT * FROM record_purchase(user, external_id, merchant, amount, currency)
-- Returns one row. `outcome` is the first failing check of API.md §3.5, in its order:
--   'duplicate' (3: duplicate_* describe the existing purchase, whoever owns it), 'currency' (4),
--   'user' (5: unknown, inactive or without a wallet), 'merchant' (6: unknown or inactive),
--   'offer_missing' (7: no active offer), 'offer_not_started' / 'offer_expired' (7: the active
--   offer is outside its dates today, UTC; active_offer_id and offer_*_date describe it),
-- or 'recorded': new_purchase_id was inserted (pending) with its pending cashback transaction,
-- and `credited` (the cashback after the monthly cap) was added to the wallet's pending balance.
-- A refusal writes nothing. A concurrent insert of the same external_id by another user raises
-- unique_violation (uq_purchases_external_id) out of the function, after which nothing of this
-- call remains; the caller answers it as a duplicate. No EXCEPTION block: each would cost a
-- subtransaction on every call.
CREATE OR REPLACE FUNCTION record_purchase(
    p_user uuid, p_external_id text, p_merchant uuid, p_amount numeric, p_currency text,
    OUT outcome text, OUT new_purchase_id uuid, OUT credited numeric,
    OUT duplicate_id uuid, OUT duplicate_user_id uuid, OUT duplicate_created_at timestamptz,
    OUT duplicate_amount numeric,
    OUT active_offer_id uuid, OUT offer_start_date date, OUT offer_end_date date
) RETURNS record
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    facts record;
    raw_cashback numeric;
BEGIN
    -- The caller's wallet row lock first (API.md §4.6): it serializes the recordings of one user
    -- and is held until this statement's transaction ends. No wallet, no lock: check 5 refuses.
    PERFORM 1 FROM wallets AS w WHERE w.user_id = p_user FOR UPDATE;

    -- Then everything the checks and the cap need, in a later statement. In READ COMMITTED each
    -- statement of a VOLATILE function takes a fresh snapshot, so this one sees every purchase
    -- that a concurrent request of the same user committed before we got the lock: the duplicate
    -- check and this month's earnings are exact, and concurrent requests cannot pass the cap.
    SELECT u.active AS user_active, w.user_id IS NOT NULL AS has_wallet,
           d.id AS duplicate_id, d.user_id AS duplicate_user_id, d.created_at AS duplicate_created_at,
           d.amount AS duplicate_amount,
           m.id AS merchant_id, m.active AS merchant_active,
           o.id AS offer_id, o.percentage, o.fixed_amount, o.monthly_cap_per_user, o.start_date, o.end_date,
           (now() AT TIME ZONE 'UTC')::date AS today,
           coalesce((SELECT t.earned FROM cashback_monthly_totals AS t
                     WHERE t.user_id = p_user AND t.offer_id = o.id
                       AND t.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0) AS earned
    INTO facts
    FROM (SELECT 1) AS one
    LEFT JOIN users AS u ON u.id = p_user
    LEFT JOIN wallets AS w ON w.user_id = p_user
    LEFT JOIN purchases AS d ON d.external_id = p_external_id
    LEFT JOIN merchants AS m ON m.id = p_merchant
    LEFT JOIN offers AS o ON o.merchant_id = m.id AND o.active;

    -- Checks 3-7 of API.md §3.5, in order; the first failure wins.
    IF facts.duplicate_id IS NOT NULL THEN
        outcome := 'duplicate';
        duplicate_id := facts.duplicate_id;
        duplicate_user_id := facts.duplicate_user_id;
        duplicate_created_at := facts.duplicate_created_at;
        duplicate_amount := facts.duplicate_amount;
        RETURN;
    END IF;
    IF upper(p_currency) <> 'EUR' THEN
        outcome := 'currency';
        RETURN;
    END IF;
    IF NOT coalesce(facts.user_active, false) OR NOT facts.has_wallet THEN
        outcome := 'user';
        RETURN;
    END IF;
    IF facts.merchant_id IS NULL OR NOT facts.merchant_active THEN
        outcome := 'merchant';
        RETURN;
    END IF;
    IF facts.offer_id IS NULL THEN
        outcome := 'offer_missing';
        RETURN;
    END IF;
    active_offer_id := facts.offer_id;
    offer_start_date := facts.start_date;
    offer_end_date := facts.end_date;
    IF facts.today < facts.start_date THEN
        outcome := 'offer_not_started';
        RETURN;
    END IF;
    IF facts.today > facts.end_date THEN
        outcome := 'offer_expired';
        RETURN;
    END IF;

    -- The effect (API.md §4.1, §4.5): the cashback with the cap, the purchase, its pending
    -- transaction and the pending credit, with the wallet still locked.
    -- Two assignments, not one nested call: cashback_round_cents uses its argument several times,
    -- and the planner inlines it only when that argument is cheap, such as a variable.
    raw_cashback := cashback_raw(p_amount, facts.percentage, facts.fixed_amount);
    credited := cashback_credited(raw_cashback, facts.monthly_cap_per_user, facts.earned);
    -- The purchase's id is the column's default (time-ordered since migration 8, ADR 0047).
    WITH purchase AS (
        INSERT INTO purchases (external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount)
        VALUES (p_external_id, p_user, p_merchant, facts.offer_id, p_amount, 'EUR', credited)
        RETURNING purchases.id
    ), credit AS (
        INSERT INTO cashback_transactions (user_id, purchase_id, amount, status)
        SELECT p_user, purchase.id, credited, 'pending' FROM purchase
    )
    UPDATE wallets AS w SET pending_balance = w.pending_balance + credited, updated_at = now()
    FROM purchase
    WHERE w.user_id = p_user
    RETURNING purchase.id INTO new_purchase_id;
    outcome := 'recorded';
END
$fn$;

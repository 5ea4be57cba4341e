"""Purchase ingestion in one statement: record_purchase() and the cashback calculation in SQL.

POST /api/v1/purchases used to take four round trips after authentication (BEGIN with the wallet
lock, a lookup, the writes, COMMIT), holding the caller's wallet row lock across three of them.
Each round trip costs CPU on both sides, and the lock's hold time included the network and the
app's event loop. Now the service sends one statement, `SELECT * FROM record_purchase(...)`, in
its own implicit transaction: the function takes the wallet lock, reads, applies checks 3-7 of
API.md §3.5, computes the cashback with the monthly cap (§4.1) and writes. The lock is held only
while the function runs inside PostgreSQL, and is released by the statement's commit.

The cashback calculation has this one implementation: cashback_round_cents (half to even, which
PostgreSQL's round() is not), cashback_raw and cashback_credited. The functions only read and
write; no table changes, so the models' state is migration 2's.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
-- The three cashback functions are plain SQL expressions, deliberately not STRICT, so that the
-- planner inlines them into record_purchase's assignments: a STRICT SQL function whose body has a
-- CASE or GREATEST is never inlined, and one that is not inlined starts an executor of its own on
-- every call (0.2-0.3 ms of PostgreSQL CPU per ingestion, measured). Their arguments are never
-- null in ingestion.

-- Money rounded to the cent, half to even (API.md §1.6): 2.475 -> 2.48, 2.465 -> 2.46.
-- PostgreSQL's round(numeric, 2) rounds half away from zero (2.465 -> 2.47), so the tie is
-- decided here: from floor(x * 100) cents, go up when the rest is over half a cent, or exactly
-- half a cent and the floor is odd. Exact for any numeric; the result has scale 2.
CREATE FUNCTION cashback_round_cents(amount numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT (floor(amount * 100) + CASE
                WHEN amount * 100 - floor(amount * 100) > 0.5 THEN 1
                WHEN amount * 100 - floor(amount * 100) < 0.5 THEN 0
                ELSE abs(mod(floor(amount * 100), 2))
            END) * 0.01
$fn$;

-- API.md §4.1 step 1: a fixed amount wins (even over a percentage, and it is not limited by the
-- purchase amount); otherwise amount x percentage / 100, rounded half to even. "* 0.01" rather
-- than "/ 100": a numeric product is exact, a quotient is cut to a scale PostgreSQL chooses.
CREATE FUNCTION cashback_raw(amount numeric, percentage numeric, fixed_amount numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT cashback_round_cents(coalesce(fixed_amount, amount * percentage * 0.01))
$fn$;

-- API.md §4.1 step 3: credited = max(0.00, min(raw, cap - earned)).
CREATE FUNCTION cashback_credited(raw numeric, monthly_cap numeric, earned numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT cashback_round_cents(greatest(0.00, least(raw, monthly_cap - earned)))
$fn$;

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
CREATE FUNCTION record_purchase(
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
           (SELECT coalesce(sum(e.cashback_amount), 0) FROM purchases AS e
            WHERE e.user_id = p_user AND e.offer_id = o.id AND e.status IN ('pending', 'confirmed')
              AND e.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
              AND e.created_at < (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')
                                 AT TIME ZONE 'UTC') AS earned
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
    new_purchase_id := gen_random_uuid();
    WITH purchase AS (
        INSERT INTO purchases (id, external_id, user_id, merchant_id, offer_id, amount, currency, cashback_amount)
        VALUES (new_purchase_id, p_external_id, p_user, p_merchant, facts.offer_id, p_amount, 'EUR', credited)
        RETURNING purchases.id
    ), credit AS (
        INSERT INTO cashback_transactions (user_id, purchase_id, amount, status)
        SELECT p_user, purchase.id, credited, 'pending' FROM purchase
    )
    UPDATE wallets AS w SET pending_balance = w.pending_balance + credited, updated_at = now()
    WHERE w.user_id = p_user;
    outcome := 'recorded';
END
$fn$;
"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP FUNCTION IF EXISTS record_purchase(uuid, text, uuid, numeric, text);
DROP FUNCTION IF EXISTS cashback_credited(numeric, numeric, numeric);
DROP FUNCTION IF EXISTS cashback_raw(numeric, numeric, numeric);
DROP FUNCTION IF EXISTS cashback_round_cents(numeric);
"""


MODELS_STATE = (
    "eJztXW1v4rgW/isVn3qlbkUp0NnV1ZUobXfZbcuqw9wd7WoVmcRA1OCwidMWze1/v7bz7j"
    "gpDgRCxl/6YvuY5DnH9nnz4VtraRvQcs+/uNBp/XTyrYXAEpI/Uu1nJy2wWsWttAGDqcUG"
    "emQEawFTFztAx6RxBiwXkiYDurpjrrBpI9KKPMuijbZOBppoHjd5yPzHgxq25xAv2IP89T"
    "dpNpEB36Ab/rt61mYmtIzUc5oG/WzWruH1irV9+TK6uWMj6cdNNd22vCWKR6/WeGGjaLjn"
    "mcY5paF9c4igAzA0Eq9BnzJ43bDJf2LSgB0PRo9qxA0GnAHPomC0/j3zkE4xOGGfRH90/x"
    "M8WmKYpj2OJ9rn24mmtSSw021EcTcRpkB9e/fnjQFhrS36AcNfBk+nl/1/MQhsF88d1sng"
    "ar0zQoCBT8pAj1GGS2BaWaCHC+CIgY4IOKzJo1aDcghQBZC2luBNsyCa4wX5t9PrFmD838"
    "ETg5mMYjjbZEX46+Qx6Or4fRTvGN8FcBfQ0FbAdV9tRyDSE/iGxUgLSHeDedgQgx4v6z2g"
    "XgDy5PbrhM68dN1/rCS2pw+Drwz25TrouR8//hwOT/BieD++5ljg2KRPQsLD8fsDm221Ve"
    "0baSG/6G8g4xf9XBGnXWl4ycFgvggAvrYJjgCJMY6JOJSnhKoqmMOtZb8yfT0e36dk+nrE"
    "C+2Xh+tbgjoDnQwyMWsePU44qHUHUkg0gLNw35AebC6hGO80JYe5EZCeh38c4abSIi9ojJ"
    "G1DvhctMmMHm4/TwYPv6e4cjOY3NKeTmqXCVtP+RURTXLyx2jyywn99+TP8eMtfwRH4yZ/"
    "tugzAQ/bGrJfNWAkTruwNUTtnWpFs+fEiU0bpkB/fgWOoaV6EhsdnJFPXRBt6xkiV7AiA/"
    "q7356gBRjCWWEI1MMnf64JneoIxeE9XABhaywWieVEDliKqUaGIBcwTW5L2IbBlJN4xqai"
    "t/IcnagocEvEfg+maSxMjq1D12WK3Nr28LZwsUk2ACvYWY4Lq70idDTiRPd+u2PnnQbprh"
    "jNV2BZUKAphGCOEZzY5MfHkP4RzdQQoaP4LTtLDtElQGDOnpJOR4mD97+35yYaYAyXK9wS"
    "+FJS/WdFPhWLjiRaGBtaM+fKtTkfoRxbVOheoYByMhEIQH0t/jl9hB9+7HQuL6867cv+p1"
    "736qr3qf2JjGXPm+26KlLuRz9TNT2lGoZ6e32dLofW1at3uwQrrJStxNMqa6nu1lKS8+ZK"
    "ZmH5o0utqpqddelF1d9kTfXzl1SfrSgJK1RKR5E8flO2qOD45W3V/OM3ayHX5/hVsY1dxz"
    "YYlzXqRpfZEtJUjYty7GZnSO24ruuVOmhThOqUPaZTFr6tTDJbCaanKRvI9SPhcohJIZs9"
    "t9TCTpDtgME1U7SaxF8HvpDTrgyL05SKy3XmMo0ua3IqZ4Jkl3pnfZn6gZqZsYTS6Gahvb"
    "MdaM7Rb3DNAB6R5wBIF0W8uXys44Q042IlzQ54jUyfpECRdydvDP0g93DweTi4uW29H8a0"
    "fIA0+oSEXt2o76zIpFwGo5Q12XBrkv3O4JxvR4bjG+my7W3ksu0VuGx7vBkZPLMWReVXZG"
    "VBhMnCFSgnUDeXwBIj/8FMvLLiT3UeTHmEzCngxc3tcPQwuD/tnXW47KKQS922SuhSCV31"
    "E+qGOU9KJXTZs1mQgl8+HWJM5zhC/qscpO1gqlJr9mVKoDJHwpavL8cyrZTl5irLpXW3Oq"
    "hq7ePQ02bmG1UAlraHROpDEco86dY4H4/3LkT64kcJqF0MHKxRbUqsp4lRTlMV6WjHe/AI"
    "ISY6FgcgRIY0fEma7xq8pY3wwloTe3ZFTVlN7HEsXPB5U3yPtrDUylfGsDKGDy/VDTOGU5"
    "tb4D+XDFBxZCpIVRykWiZiGVsGqpJhkeOE9sNgFSdcqYDVExH4p9FwUhSxUg6KAzsoRNfw"
    "BO6KnNt6+c6L3BuDypfRXF9GKQt7h7Z1TVf0Lo1r7Ak2yPzQakzRwODq7is0KMU6H/rmKt"
    "beyijJ9TSl4npduC5I9stExFSu3w50gaz+LgkpR7ZfnauWoKoEyooSKDexR7OmVlbCsxwI"
    "6wNsiP82NmodhPpDDnCLehMubGXERoAKLNck2Pnmasr7oEzU5pqo8A1DBwFLeEwVlBVIkz"
    "XurmMlearKHVCtO0D3HAcifS0jyEmaBroELjeQ4stcGb48TodLawWRQTHaC8QVeF1CX3Gp"
    "DUNA/d0lQ0ltGy/QMWemzgIpqQJLadBzKxzl0n9c9KjuUAdFjzoX3avup8t+N6p1FLUUlT"
    "jKBuoR0Rs0Di9ZH1PeHMrbVBdv0yY+RuVZ/h65rjzLTeP6Jp5llahTiYeZ3YeQxDRJowDl"
    "AFUREOWsP7Sr+GNnvWhn3QGuKjlPgK8d3krbEtymXaXkkU0eKzuIMRVEQopr8GdZJV+yul"
    "wh/npeY9q6fnVQv1sQR4ore+dHkfw64geMIdXnRK9DnHLnNzWZl1WbAivc/aSua2aolZuy"
    "8D7RCzDZi5YEXEivIC+CfAVMo6x4c6QK6CKglV8oF+qG+YUkqpkU5R6JjUnJvKOypmQdzv"
    "Idl83bLt3I/94cUbJR9I06BalG8Vf3qESj5iYaqeQXdRfmJ1r9lwx26aRVnZcVJ2dEL1Cq"
    "9HGaVqkrdVFXNglext/HJ895nlaVva6PXprldJTd6sAZpOmBUuVbxdTN+6agSnJk44UyXc"
    "tencmSbqGm1Qx6FeGsCZwqwrnXCGdyUe8P23ou/o/vGWV3wGqjcZKOgjtILA4H3llg3hJ4"
    "C5LdZ0Uug5k/UJuRkcpx0HDHwTOUutARDG/gXY6LdnsTY7bdzrdm2xm3AUT03UXf6VtUpi"
    "5BperUbV6nztXtFfShkpDoNNUefTVzy576vrVjdNT4sMnt0UkaZTvw37IRf7iE9HJkzTOD"
    "extty72CbbmX3ZbV9Yh89JvrYVRh8KZxvZIw+O4MsoFnmPjeFlpjUd9ZkSkG6CjNspUd1n"
    "Q7zNbZXfkyuxNHqranumxPmxxKZDnbjrTRkqZqojW+c4PFh0xuM0vSKIMlW4BfzlaJKRoo"
    "sP3uBgLb7+YKLO3iUyFc23N0eY9GhlDBLQO33BbBkakgHn+N1sO6LfcFrQmSPbrjXE+n0Z"
    "1j9ccZEAPTEmSo/fp5/JjnO4pIeJ3R1PHJ/04s063swmJCZ596poVN5J7Tjz2E2k4hSqmL"
    "IdCnD4OvPA+G9+NrXu7pBNei6PWB7E7omPqiJbI6/Z6zQpszHlMbezO3OpBw1xWUAgpUsN"
    "rmne+mFFC+efkCHVdSXUuQNFCBqKYEIVlUMgqxP7yB6FYSTCWfiKEoyT3/iEuQ7P+IO4xu"
    "1ozD7P3/Q5WMNQ=="
)

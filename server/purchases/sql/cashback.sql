-- The cashback calculation (API.md §4.1). Applied by name by migration 3.

-- The three cashback functions are plain SQL expressions, deliberately not STRICT, so that the
-- planner inlines them into record_purchase's assignments: a STRICT SQL function whose body has a
-- CASE or GREATEST is never inlined, and one that is not inlined starts an executor of its own on
-- every call, a cost each ingestion would pay. Their arguments are never null in ingestion.

-- Money rounded to the cent, half to even (API.md §1.6): 2.475 -> 2.48, 2.465 -> 2.46.
-- PostgreSQL's round(numeric, 2) rounds half away from zero (2.465 -> 2.47), so the tie is
-- decided here: from floor(x * 100) cents, go up when the rest is over half a cent, or exactly
-- half a cent and the floor is odd. Exact for any numeric; the result has scale 2.
CREATE OR REPLACE FUNCTION cashback_round_cents(amount numeric) RETURNS numeric
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
CREATE OR REPLACE FUNCTION cashback_raw(amount numeric, percentage numeric, fixed_amount numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT cashback_round_cents(coalesce(fixed_amount, amount * percentage * 0.01))
$fn$;

-- API.md §4.1 step 3: credited = max(0.00, min(raw, cap - earned)).
CREATE OR REPLACE FUNCTION cashback_credited(raw numeric, monthly_cap numeric, earned numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT cashback_round_cents(greatest(0.00, least(raw, monthly_cap - earned)))
$fn$;

"""Initial schema: every table of API.md §5 with its checks, keys and indexes.

Written by hand: partial and functional indexes and named CHECK constraints are raw SQL.
MODELS_STATE is Aerich's snapshot of the Tortoise models, so `aerich migrate` diffs from here.
No extension: gen_random_uuid() is built into PostgreSQL since 13. (This migration first created
pgcrypto, which nothing used; a database made then keeps it, harmlessly. Without it the schema
also builds on PostgreSQL installs that lack the contrib modules, such as the one `make serve`
falls back to.)
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(254) NOT NULL CONSTRAINT ck_users_email_lower CHECK (email = lower(email)),
    hashed_password text NOT NULL,
    role varchar(16) NOT NULL DEFAULT 'user' CONSTRAINT ck_users_role CHECK (role IN ('user', 'admin')),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_users_email UNIQUE (email)
);

CREATE TABLE merchants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(255) NOT NULL,
    default_cashback_percentage numeric(5,2) NOT NULL
        CONSTRAINT ck_merchants_default_pct CHECK (default_cashback_percentage BETWEEN 0 AND 100),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX uq_merchants_name_ci ON merchants (lower(name));
CREATE INDEX ix_merchants_active_name ON merchants (active, lower(name), id);

CREATE TABLE offers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id uuid NOT NULL REFERENCES merchants (id) ON DELETE RESTRICT,
    percentage numeric(5,2) NOT NULL DEFAULT 0 CONSTRAINT ck_offers_percentage CHECK (percentage BETWEEN 0 AND 100),
    fixed_amount numeric(19,2) NULL CONSTRAINT ck_offers_fixed_amount CHECK (fixed_amount > 0),
    start_date date NOT NULL,
    end_date date NOT NULL,
    monthly_cap_per_user numeric(19,2) NOT NULL CONSTRAINT ck_offers_monthly_cap CHECK (monthly_cap_per_user > 0),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_offers_dates CHECK (end_date >= start_date),
    CONSTRAINT ck_offers_has_value CHECK (fixed_amount IS NOT NULL OR percentage > 0)
);
CREATE UNIQUE INDEX uq_offers_one_active_per_merchant ON offers (merchant_id) WHERE active;
CREATE INDEX ix_offers_merchant_active ON offers (merchant_id, active);
CREATE INDEX ix_offers_start_id ON offers (start_date DESC, id);
CREATE INDEX ix_offers_active_window ON offers (active, start_date, end_date);

CREATE TABLE purchases (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id varchar(255) NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    merchant_id uuid NOT NULL REFERENCES merchants (id) ON DELETE RESTRICT,
    offer_id uuid NOT NULL REFERENCES offers (id) ON DELETE RESTRICT,
    amount numeric(19,2) NOT NULL CONSTRAINT ck_purchases_amount CHECK (amount > 0),
    currency char(3) NOT NULL CONSTRAINT ck_purchases_currency CHECK (currency ~ '^[A-Z]{3}$'),
    status varchar(16) NOT NULL DEFAULT 'pending'
        CONSTRAINT ck_purchases_status CHECK (status IN ('pending', 'confirmed', 'rejected', 'reversed')),
    cashback_amount numeric(19,2) NOT NULL DEFAULT 0 CONSTRAINT ck_purchases_cashback CHECK (cashback_amount >= 0),
    verification_attempts integer NOT NULL DEFAULT 0 CONSTRAINT ck_purchases_attempts CHECK (verification_attempts >= 0),
    next_verification_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_purchases_external_id UNIQUE (external_id)
);
CREATE INDEX ix_purchases_created ON purchases (created_at DESC, id DESC);
CREATE INDEX ix_purchases_user_created ON purchases (user_id, created_at DESC, id DESC);
CREATE INDEX ix_purchases_user_status ON purchases (user_id, status, created_at DESC);
CREATE INDEX ix_purchases_merchant_created ON purchases (merchant_id, created_at DESC);
CREATE INDEX ix_purchases_status_created ON purchases (status, created_at DESC);
CREATE INDEX ix_purchases_cap ON purchases (user_id, offer_id, created_at) WHERE status IN ('pending', 'confirmed');
CREATE INDEX ix_purchases_due ON purchases (next_verification_at, created_at) WHERE status = 'pending';

CREATE TABLE cashback_transactions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    purchase_id uuid NOT NULL REFERENCES purchases (id) ON DELETE RESTRICT,
    amount numeric(19,2) NOT NULL CONSTRAINT ck_cashback_tx_amount CHECK (amount >= 0),
    status varchar(16) NOT NULL
        CONSTRAINT ck_cashback_tx_status CHECK (status IN ('pending', 'available', 'reversed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_cashback_tx_purchase UNIQUE (purchase_id)
);
CREATE INDEX ix_cashback_tx_user_created ON cashback_transactions (user_id, created_at DESC, id DESC);

CREATE TABLE wallets (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    pending_balance numeric(19,2) NOT NULL DEFAULT 0 CONSTRAINT ck_wallets_pending CHECK (pending_balance >= 0),
    available_balance numeric(19,2) NOT NULL DEFAULT 0 CONSTRAINT ck_wallets_available CHECK (available_balance >= 0),
    paid_balance numeric(19,2) NOT NULL DEFAULT 0 CONSTRAINT ck_wallets_paid CHECK (paid_balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payouts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount numeric(19,2) NOT NULL CONSTRAINT ck_payouts_amount CHECK (amount > 0),
    status varchar(16) NOT NULL DEFAULT 'requested'
        CONSTRAINT ck_payouts_status CHECK (status IN ('requested', 'completed', 'failed')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz NULL,
    processed_by uuid NULL REFERENCES users (id) ON DELETE RESTRICT,
    external_reference varchar(255) NULL,
    CONSTRAINT ck_payouts_processed CHECK ((status = 'requested') = (processed_at IS NULL))
);
CREATE UNIQUE INDEX uq_payouts_one_requested ON payouts (user_id) WHERE status = 'requested';
CREATE INDEX ix_payouts_user_requested ON payouts (user_id, requested_at DESC, id DESC);
CREATE INDEX ix_payouts_status_requested ON payouts (status, requested_at DESC, id DESC);

CREATE TABLE audit_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor_type varchar(16) NOT NULL CONSTRAINT ck_audit_actor_type CHECK (actor_type IN ('system', 'admin', 'user')),
    actor_id uuid NULL,
    action varchar(64) NOT NULL,
    resource_type varchar(64) NOT NULL,
    resource_id uuid NOT NULL,
    outcome varchar(16) NOT NULL DEFAULT 'success' CONSTRAINT ck_audit_outcome CHECK (outcome IN ('success', 'failure')),
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT ck_audit_actor CHECK ((actor_type = 'system') = (actor_id IS NULL))
);
CREATE INDEX ix_audit_occurred ON audit_logs (occurred_at DESC, id DESC);
CREATE INDEX ix_audit_action ON audit_logs (action, occurred_at DESC);
CREATE INDEX ix_audit_resource ON audit_logs (resource_type, resource_id, occurred_at DESC);
CREATE INDEX ix_audit_actor ON audit_logs (actor_id, occurred_at DESC);

CREATE TABLE feature_flags (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key varchar(100) NOT NULL CONSTRAINT ck_feature_flags_key CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    enabled boolean NOT NULL DEFAULT true,
    scope_type varchar(16) NOT NULL DEFAULT 'global'
        CONSTRAINT ck_feature_flags_scope_type CHECK (scope_type IN ('global', 'merchant', 'user')),
    scope_id uuid NULL,
    description varchar(500) NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_feature_flags_scope CHECK ((scope_type = 'global') = (scope_id IS NULL))
);
CREATE UNIQUE INDEX uq_feature_flags_key_scope
    ON feature_flags (key, scope_type, coalesce(scope_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX ix_feature_flags_scope ON feature_flags (scope_type, scope_id);
CREATE INDEX ix_feature_flags_created ON feature_flags (created_at DESC, id DESC);

CREATE TABLE refresh_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash char(64) NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz NULL,
    revoked_at timestamptz NULL,
    CONSTRAINT uq_refresh_tokens_hash UNIQUE (token_hash)
);
CREATE INDEX ix_refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX ix_refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE login_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email varchar(254) NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    ip inet NULL
);
CREATE INDEX ix_login_attempts_email ON login_attempts (email, attempted_at DESC);

CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);
"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TABLE IF EXISTS login_attempts;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS feature_flags;
DROP TABLE IF EXISTS audit_logs;
DROP TABLE IF EXISTS payouts;
DROP TABLE IF EXISTS wallets;
DROP TABLE IF EXISTS cashback_transactions;
DROP TABLE IF EXISTS purchases;
DROP TABLE IF EXISTS offers;
DROP TABLE IF EXISTS merchants;
DROP TABLE IF EXISTS users;
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

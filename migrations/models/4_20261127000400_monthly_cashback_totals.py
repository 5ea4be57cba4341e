"""The monthly cap reads a running total: cashback_monthly_totals, kept exact by a trigger.

record_purchase() (migration 3) computed `earned` (API.md §4.1 step 2) by summing this user's
pending and confirmed purchases of the offer created this UTC month, an index scan whose cost
grew with the user's purchases this month (0.84 ms of PostgreSQL CPU per call at 0-500 of them,
2.06 ms at 2,500-3,000). Now it reads one row of cashback_monthly_totals by primary key.

The table holds, per (user, offer, first day of the UTC month of created_at), the sum of
cashback_amount over the purchases that count: status pending or confirmed. The trigger
trg_purchases_monthly_totals keeps it exact for every writer (ingestion, the job's rejection, the
admin reversal, ops scripts, psql): after a row is inserted, updated or deleted, what the old row
counted leaves its month and what the new row counts joins its month, both as relative updates,
so concurrent writers never lose one. Its WHEN clauses skip the rows that change nothing counted
(a confirmation, a purchase credited 0.00, a change of another column). TRUNCATE purchases empties
the totals. The read in record_purchase stays exact because the caller's wallet lock, taken before
it, serializes every writer of that user's counted amounts (recording, rejection, reversal), and
the trigger adds the new purchase in the recording's own transaction.

The trigger functions, the backfill and the new record_purchase live in server/purchases/sql/,
applied here by name; the downgrade applies record_purchase_summing.sql, the body migration 3
installed. The models' state is migration 3's (migration 5 adds the table's model).
"""

from tortoise import BaseDBAsyncClient

from server.purchases.rules import sql_file

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return (
        """
-- No purchase changes between the backfill and the trigger: both are done under this lock, which
-- waits for the writers in flight and is held until the migration commits.
LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE cashback_monthly_totals (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    offer_id uuid NOT NULL REFERENCES offers (id) ON DELETE CASCADE,
    month date NOT NULL,
    earned numeric(19,2) NOT NULL DEFAULT 0 CONSTRAINT ck_cashback_monthly_totals_earned CHECK (earned >= 0),
    CONSTRAINT pk_cashback_monthly_totals PRIMARY KEY (user_id, offer_id, month)
);

"""
        + sql_file("monthly_totals_triggers")
        + sql_file("monthly_totals_backfill")
        + sql_file("record_purchase")
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_truncate ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_delete ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_update ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_monthly_totals_insert ON purchases;
DROP FUNCTION IF EXISTS cashback_monthly_totals_truncate();
DROP FUNCTION IF EXISTS cashback_monthly_totals_follow();
DROP TABLE IF EXISTS cashback_monthly_totals;
-- Migration 3's record_purchase, which sums the purchases again.
""" + sql_file("record_purchase_summing")


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

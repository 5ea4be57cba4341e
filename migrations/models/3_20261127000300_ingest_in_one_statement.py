"""Purchase ingestion in one statement: record_purchase() and the cashback calculation in SQL.

POST /api/v1/purchases used to take four round trips after authentication (BEGIN with the wallet
lock, a lookup, the writes, COMMIT), holding the caller's wallet row lock across three of them.
Each round trip costs CPU on both sides, and the lock's hold time included the network and the
app's event loop. Now the service sends one statement, `SELECT * FROM record_purchase(...)`, in
its own implicit transaction: the function takes the wallet lock, reads, applies checks 3-7 of
API.md §3.5, computes the cashback with the monthly cap (§4.1) and writes. The lock is held only
while the function runs inside PostgreSQL, and is released by the statement's commit.

The bodies live in server/purchases/sql/, applied here by name: cashback.sql (cashback_round_cents,
cashback_raw, cashback_credited) and record_purchase_summing.sql (record_purchase as this
migration installs it). The functions only read and write; no table changes, so the models' state
is migration 2's.
"""

from tortoise import BaseDBAsyncClient

from server.purchases.rules import sql_file

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_file("cashback") + sql_file("record_purchase_summing")


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

"""Offers and merchants announce their changes: NOTIFY catalogue_changed when a write commits.

Every instance keeps rendered /offers/active pages until the catalogue changes
(server/offers/catalogue.py) and LISTENs on this channel. A statement-level trigger sends one
notification per writing statement, only when its transaction commits, whoever writes (the API,
the ops CLI, psql). No table changes.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
CREATE FUNCTION notify_catalogue_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('catalogue_changed', TG_TABLE_NAME);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER trg_offers_catalogue_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON offers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalogue_changed();
CREATE TRIGGER trg_merchants_catalogue_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON merchants
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalogue_changed();
"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TRIGGER IF EXISTS trg_merchants_catalogue_changed ON merchants;
DROP TRIGGER IF EXISTS trg_offers_catalogue_changed ON offers;
DROP FUNCTION IF EXISTS notify_catalogue_changed();
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

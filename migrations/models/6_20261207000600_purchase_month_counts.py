"""Exact list totals in constant time: purchase counts by user and month, by day, and audit counts by day.

purchase_month_counts holds, per (user, first day of the UTC month of created_at, status), how many purchases
there are. The triggers (server/purchases/sql/purchase_counts_triggers.sql) keep it exact in the
writer's own transaction as relative updates, so every writer keeps it without code changes. The
lists of a user's purchases and cashback transactions read their total from at most
4 x (months of history) rows, and a deep offset finds its month from them
(docs/adr/0030-exact-totals-in-constant-time.md). The backfill counts the purchases already there
under the same lock as the trigger's creation, as migration 4 does for the monthly cap totals.

purchase_day_counts holds, per (UTC day of created_at, status, slot), purchases counted in that
slot (server/purchases/sql/purchase_day_counts.sql): the admin purchase list filtered by status and
dates sums whole days from it, the dates being UTC days.

audit_day_counts holds, per (UTC day of occurred_at, action, slot), how many audit rows there are
(server/audit/sql/audit_day_counts.sql): the audit list sums whole days from it and counts only
the partial days at the ends of its range.
"""

from tortoise import BaseDBAsyncClient

from server.audit import SQL_DIR as AUDIT_SQL
from server.purchases.rules import sql_file

AUDIT_DAY_COUNTS = AUDIT_SQL / "audit_day_counts.sql"

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return (
        """
-- No purchase changes between the backfill and the triggers: both are done under this lock, which
-- waits for the writers in flight and is held until the migration commits.
LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE;
-- That lock mode needs UPDATE, DELETE or TRUNCATE, which migration 1 took from everyone on the
-- append-only audit_logs, its owner included. The grant and its revoke commit together, so no
-- other session ever sees it (and the append-only trigger refuses a TRUNCATE regardless).
GRANT TRUNCATE ON audit_logs TO CURRENT_USER;
LOCK TABLE audit_logs IN SHARE ROW EXCLUSIVE MODE;
REVOKE TRUNCATE ON audit_logs FROM CURRENT_USER;

CREATE TABLE purchase_month_counts (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    month date NOT NULL,
    status varchar(16) NOT NULL,
    n bigint NOT NULL DEFAULT 0 CONSTRAINT ck_purchase_month_counts_n CHECK (n >= 0),
    CONSTRAINT pk_purchase_month_counts PRIMARY KEY (user_id, month, status)
);

"""
        + sql_file("purchase_counts_triggers")
        + """
CREATE TABLE purchase_day_counts (
    day date NOT NULL,
    status varchar(16) NOT NULL,
    slot smallint NOT NULL,
    n bigint NOT NULL DEFAULT 0,
    CONSTRAINT pk_purchase_day_counts PRIMARY KEY (day, status, slot)
) WITH (fillfactor = 10);

"""
        + sql_file("purchase_day_counts")
        + sql_file("purchase_counts_backfill")
        + """
CREATE TABLE audit_day_counts (
    day date NOT NULL,
    action varchar(64) NOT NULL,
    slot smallint NOT NULL,
    n bigint NOT NULL DEFAULT 0 CONSTRAINT ck_audit_day_counts_n CHECK (n >= 0),
    CONSTRAINT pk_audit_day_counts PRIMARY KEY (day, action, slot)
);

"""
        + AUDIT_DAY_COUNTS.read_text(encoding="utf-8")
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TRIGGER IF EXISTS trg_audit_logs_day_counts ON audit_logs;
DROP FUNCTION IF EXISTS audit_day_counts_follow();
DROP TABLE IF EXISTS audit_day_counts;
DROP TRIGGER IF EXISTS trg_purchases_day_counts_truncate ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_day_counts_delete ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_day_counts_update ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_day_counts_insert ON purchases;
DROP FUNCTION IF EXISTS purchase_day_counts_truncate();
DROP FUNCTION IF EXISTS purchase_day_counts_follow();
DROP TABLE IF EXISTS purchase_day_counts;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_truncate ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_delete ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_update ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_insert ON purchases;
DROP FUNCTION IF EXISTS purchase_month_counts_truncate();
DROP FUNCTION IF EXISTS purchase_month_counts_follow();
DROP TABLE IF EXISTS purchase_month_counts;
"""


MODELS_STATE = (
    "eJztXXtv2zgS/yqEgUMSwE3TPLvdwwF5dTe3eRSJey32ctDSEu3oIpGqKCU1ev3ux4ckSz"
    "IlW7Zsyzb/aWOSQ1K/4WNmOEP+aLnEQg7d/UyR3/oAfrQwdBH7I5PeBi3oecNUnhDAriMK"
    "hqyESIFdGvjQDFhiDzoUsSQLUdO3vcAmmKXi0HF4IjFZQRv3h0khtr+FyAhIHwVPoiP//g"
    "9LtrGFviMa//SejZ6NHCvTT9vibYt0Ixh4Iu3z56uLj6Ikb65rmMQJXTws7Q2CJ4KT4mFo"
    "W7uchuf1EUY+DJCV+gzey+hz4yTZY5YQ+CFKumoNEyzUg6HDwWj9vRdik2MAREv8n8N/RF"
    "1LFXv45lzIX9tbrBeGD7FFXIMX397Z2mlVwNMkmPPCxgEH78dP2dYQJJHa4o2e/356v31w"
    "LGr3CA36vsgUELZ+CkIYQEkqGDFEHrnQdkbBP3+Cvhr8hCCHP+vqfJCPAcrAbBi3dx3j4b"
    "JjGDNA2nLhd8NBuB88sZ/7R4clGP/r9F7AzEoJnAmbJXLu3EZZ+zKP4z3E9wnSJ2QZHqT0"
    "lfiKYd5B3wM10grSejCPE4agD6f6AlAvAblz+bXDa3Yp/eaksd2+Of0qYHcHUc713e1vcf"
    "EUL86v785yLPAJy6swwuPySwY7jBbtWsb2u+MJhva748KRzbOyqLI9wn5R4HpGGHwQq6Ed"
    "EuXA7TKqRaKbrDJ1j+Czu7vrzAg+u8oP0c83Z5cMbIE1K2QHIvnqtpND2PQRR8KAwSjKFy"
    "wnsF2khjlLmYPaikh34z8WOqrT+yMmr/PbEztXN5cPndObTxluXJx2LnnOfmYtiVO38xMg"
    "qQR8uer8DvhP8Ofd7WV+o03Kdf5s8T7BMCAG+zwDWmls4uQ46ScXiHrPqY2ZJ3Sh+fwKfc"
    "vI5KTWM9RjzT4xQesZYaqYgRH9xz/ukQMFpKOjIJIM72VdHV7V6m4lw9RoamfnEdtHOaaG"
    "S3Dw5AwYcAF0ZgTuPKr0RtbZ4VWuPYCsCKZQSME1wdcZ1riu6HmhbzJRDs2I2KeomnWHSc"
    "5SVjjk1LVAJuboOa9wbcHziYkoFdrCgIQzAycqmQCsSIxaLawWitDKDCcueZB9UiSLZLOG"
    "aL5Cx0EKATUG8w6jDmH/jIf0S1LTmgw6jp+77+YQdSGGfdFLXh0njr7/mvRtfBoEyPWCls"
    "KIl8lvlxnzHF6SCf+iaMOsemd2/woXGDyUdj17dNWOBkBzzUp93oU3v+zvHxyc7O8dHL8/"
    "Ojw5OXq/956VFf0dzTop0ymvfuPaYTutmcTqYnMte0uelguw7UUzbCoVPU+rlfTGKulplt"
    "veKKOvMCpa0Lypp1MzNzkVD69uL/lSVMGUUUnUqLiLZgwail00b/Ao3kVHzSzN2UX12dgi"
    "zsYE5w1+DDPKgY82A6N4L82Srt1R2XHZbioQPy7eSY9HNlKb0nCqXTRDqLfQldhC0XfPZt"
    "VNwe0sZaPYPf+T0VVjc0inmtEpshoYvDpS1Mrx10cvbI+bhsVZSs3lJnOZOyEY1STQFEmd"
    "YmhzmTpGwhxRjLLoKkRL4iO7j/9AAwHwFesHxKbKayLn3reakI4YTlmyD18TTSg9oNi3sy"
    "9G0mPi/PTh/PTisvVzOZrmDeKnS1hpq03y2mUaphuV0srlBiqX4v8R7Is1yrj8WhpnjyYy"
    "zh6VGGeP8jpl1GcjcV7w2GxDOGCTWSGwINN2oaNGfkxNeQFGVrUbVbmCzCnhxcXl+dXN6f"
    "X2UXs/574Wc+lwTzsKakdBbUBpgqMg6fWiqI7pHR3ueB2ru4hp16xFuINUlJzlmFKIzclg"
    "K5aZh2NaC8ybJTBPLb81VVzba4yI1uOHWQZ0YxfJCuDmSWeGd3WMeTHS736pADUNoB8YXK"
    "JSy2pqlLNUZXLa6u5BSoiZvJUDEGGrMnxpmo0GL46AMKHHtVhDbYAsnfBFVTRnXW3ozNd6"
    "sNaDtR5c49lUbD6veD6VI9NnVOVnVG7qKGPGc6r0qchqQjv2rCo3uDLnVfdsxN9fnXfKDq"
    "x01KI27qy2cUc5xBS2nqKhWGz6KZkRY21BrU/IB9tcVm0DYUJqg57t0wBYcMASQPCEwOfO"
    "ORBV73wQv+P24vxkQLFfMABmrPKmGTGvdh5xQDhvIgJvF3zx7SBAGBDsDEB3IDJYL/p91g"
    "GCU5Vss868IP9tkvKWbeJvd34FTOaxgB3sPuJH3OHUHOgtCp7RANhUfgVbx6IPEX/Jbu+C"
    "DvEDYlMEJJtYg+iN3GE5NRWdagNKwF+C4q9HsTdYFEAqOsqb6BFf/H13f8O4ZjsB6zj7Du"
    "g4LNlHjIeMAmDE+g4ofEGAlZeLKcsAdrTb7LbaM9nzRP+q6JIJQd2K5FLdeydRI0tCjaCP"
    "kUIIK1Ukh0TNUR3na5KrpC7Gk66KaJum0XJtDlDtyqZd2ZatHox1ZRtZAWrAdN2OcPOgpl"
    "e9JjkIqu44KRGEc1ehTCAH569j0Seim3UiOtWBXY1HdQ1dMOo8qwtChfmg2ElzSLGGbpr1"
    "3yGoDfYbZbAPPWtKdmcpNbtXg91a4apTf00uSKsGaY5ssZJXI0HVWuyctNhJDrhGFa7RET"
    "7KgfgWsQnxn+XMpgmDeiwHcpN6Ei7MpMomgCr01zTYxUpr5jROK6qbpaii7wHyMXSUW1fJ"
    "hWRZsrW7RWUucW/aKDBfo4AZ+j7C5kAhJpRfCZQmXEPrwMHYpaNwFB+skeHFQ9jioNUF6x"
    "yMLrH5eKqVQkHdnCWjQce3L8i3e7YpnIsyV7FmsS68C7WQfvz1qA1FOLoVdf/d4cnh+4Pj"
    "w+Qy1CSl7A7UUW9fzMQDIwdTVbtSUR3awrQSFiZtP94odmv78UaxW/v3z8WOrB3LtGNZ0+"
    "DUJvm5m+RVK2sNuOqYHgW+2nNvMmQLPfemO0kqOe8of8xslFXVn6+Z7kWzZt52MPNbNvGZ"
    "0AUcyHe3Ss6NkjLtSc6PDAsOUo+DTRj4w0NuogicoebXBtJqyP53SLDzIRUzIxpAFrCxjM"
    "HhBZQhN60crHNu7hFHIT50khgfBWa7LJ01LarkwTc0dAHhETaQd3iLPmLeNgUuYqMYQMyG"
    "OvswGYpDMBI9Ay77tC4CGPUhj07fBTx6CFquPewScGwa8NppWYQRazKHSpXQIkn4F5ChRY"
    "94TGwR/wTWocWEFS3fgt2gc666bNjFB4xsIKlNAmqso+IbfRUIn26jmD240HEKjdIxzXJt"
    "0PW+0nWwf3KcmKL5jzIr9MPN6fW1whStECBK3jlTSRErZ8dfwOtmI1rhcuI4FM+Ilogz2c"
    "dGJxBo8u+dVoplLg4uVgsfbO9/Iq9sB8eDTJwx8tn258ttryieue62HnFJDHM1AUeiZ8S0"
    "QsppM1mGAL7PD8Ara4h9yDNCHhdIAPrOAP5VtMcFFSpjodlPm8kNIqpcSAkWK//GY6MCdF"
    "kDFvRt1pWeT9yJwqYFNAkYU0g2FaKmeZLkkpZu1k66aU6M+kpJOHpXntObo9r0rU3fzTEi"
    "NvR5kOg5a4WkOHzoulg6lM9qL9FZujkzuwkO+TX7Q0dOgkYXOvHUreCCp6DWLniqCzdfoC"
    "2+b0qclfQaaQXSHrStaQdzjlTjq8BXOz6tvePTTLaucSJjxfC5aQXGJuzUNYuLsxkO4YCE"
    "amOhzCkVAT1RRsfLbWC8nI7h0he7FADqI1YBDeTFiY2yX6afBo76ONXjwFlaLbI0VmTJaA"
    "A+MRGd7snvPK1+EbrJnE6Csn3UQzygtdIrpmrqqdbUhvF4AaHdw4nSHVS9BSZFOqOc1jDc"
    "tQ9/Q+DUBxkL9eHPz+jFYNvMyT/+vpzRlXO+/uYVLQUfEVMvfPTRgf2WwlyQzm6X2Qx6sq"
    "DRYyW15WADLQfPSLEYFItjUfE1vI7k3d7eJGrt3l6xXrs3YjdAmH+7YnCXvuGWotKPuI19"
    "xI2axEMSoQoDOUu15PHcd0hX2tkaaqCRaFVbpdM0WnvI4pluvMKgzZGtnxZ8NNEifFSyCB"
    "+NLsL60o+Nsjfps++1Z3dD4jxOQ8sOyiJWswXaZYoY5EVnjlUlprg0UAZVyJjiJHo0Ca0Q"
    "TQGfvKZjK6aKVa23uSRWlUdySDwc0qdg27X7vgimBic7MgZD1ilCRnkgBg/RoHEcRhxuAR"
    "5EYCr1RKgGwaz+bkgHMmxVRtDKSFbKgx+gI7u4zYNWPZbKNaYuD0yliFLxYR73oDOf+dvg"
    "HtfmwN/A+x0ef/GI2fyStzUGUeQIBRYBmASAzfsQ8Q/i9bIWgEPM58xHkD6PAmEjg1X8Jg"
    "npkKNAwtNndOUhsRnsqwSOSMKJA0cWGhJbFGpfLB8NKdYuaOT4cALB6PiwUC7iWTokVofE"
    "6pDYJvh7blxIrJCEronSWJ3kTSAgcYFAm6k3z0ydkjSranU5Uq3WNVata2eFP+JXtupmqd"
    "bxlKJ2066ErNrKlqbRpt0RPJestTRqwNalt6SdRSkJfbP6kc8IoYa7CtzVlogcmXZ4yl+q"
    "GwYmcSuN3xTJkkcuDU3uHdPgXc1CAbQdhcf+Px/ubosO1xKSvIxomwH4nzA3Lks6fGxt/f"
    "i59eHDfynB3cfWnKREDk5GQIwh3r45/ZpH//z67iw/0HkFZw3SOpFvm08tlc4pc9qlGuew"
    "TGO0zUJ7iHKZVRhEIpmruVbPWh79KFYkX5BPK8pnKZI1lBjm86YYm1RVJGBZfA3RnYtXGW"
    "sxQKpwv+LNLUXSkM1t7sLYemxmP/8PAZOlNQ=="
)

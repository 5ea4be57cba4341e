"""Newest-first list indexes that end in `id`, as the lists order (created_at or occurred_at DESC, id DESC).

The admin purchase list filtered by status, and the audit list filtered by action, walked the
time index (ix_purchases_created, ix_audit_occurred) newest first and dropped every row of another
status or action: the purchases still pending at the head of the list (the verification job's
backlog), and the other actions of the same days. With `id` after the time, the index of the filter
gives the order itself, so a page reads its own rows only
(docs/adr/0030-exact-totals-in-constant-time.md).

Each new index is built under a temporary name, then replaces the old one in the same transaction.
A plain CREATE INDEX blocks the table's writers (not its readers) for the build: at 10 million
purchases and audit rows that is tens of seconds; CONCURRENTLY cannot run inside a migration's
transaction.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
CREATE INDEX ix_purchases_status_created_id ON purchases (status, created_at DESC, id DESC);
DROP INDEX ix_purchases_status_created;
ALTER INDEX ix_purchases_status_created_id RENAME TO ix_purchases_status_created;
CREATE INDEX ix_audit_action_id ON audit_logs (action, occurred_at DESC, id DESC);
DROP INDEX ix_audit_action;
ALTER INDEX ix_audit_action_id RENAME TO ix_audit_action;
"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
CREATE INDEX ix_purchases_status_created_old ON purchases (status, created_at DESC);
DROP INDEX ix_purchases_status_created;
ALTER INDEX ix_purchases_status_created_old RENAME TO ix_purchases_status_created;
CREATE INDEX ix_audit_action_old ON audit_logs (action, occurred_at DESC);
DROP INDEX ix_audit_action;
ALTER INDEX ix_audit_action_old RENAME TO ix_audit_action;
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

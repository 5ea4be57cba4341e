"""Exact list totals in constant time: purchase_month_counts and audit_day_counts, kept by triggers.

The table holds, per (user, first day of the UTC month of created_at, status), how many purchases
there are. The triggers (server/purchases/sql/purchase_counts_triggers.sql) keep it exact in the
writer's own transaction as relative updates, so every writer keeps it without code changes. The
lists of a user's purchases and cashback transactions read their total from at most
4 x (months of history) rows, and a deep offset finds its month from them
(docs/adr/0030-exact-totals-in-constant-time.md). The backfill counts the purchases already there
under the same lock as the trigger's creation, as migration 4 does for the monthly cap totals.

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
LOCK TABLE audit_logs IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE purchase_month_counts (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    month date NOT NULL,
    status varchar(16) NOT NULL,
    n bigint NOT NULL DEFAULT 0 CONSTRAINT ck_purchase_month_counts_n CHECK (n >= 0),
    CONSTRAINT pk_purchase_month_counts PRIMARY KEY (user_id, month, status)
);

"""
        + sql_file("purchase_counts_triggers")
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
DROP TRIGGER IF EXISTS trg_purchases_month_counts_truncate ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_delete ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_update ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_insert ON purchases;
DROP FUNCTION IF EXISTS purchase_month_counts_truncate();
DROP FUNCTION IF EXISTS purchase_month_counts_follow();
DROP TABLE IF EXISTS purchase_month_counts;
"""


MODELS_STATE = (
    "eJztXWlv2zga/iuEgUUSwE3TnJ3OYoFcnfFOjiJxt8VsFhpaoh1tZFIVqSRGN/99SeqwDk"
    "qxbNmRbX5pY5IvST283pP82RoSCzl0+ytFXusT+NnCcIj4H6n0NmhB1x2nigQGe44s6PMS"
    "MgX2KPOgyXhiHzoU8SQLUdOzXWYTzFOx7zgikZi8oI0H4yQf2z98ZDAyQOxeduTf/+HJNr"
    "bQM6LRT/fB6NvIsVL9tC3Rtkw32MiVaV+/ds4+y5KiuZ5hEscf4nFpd8TuCY6L+75tbQsa"
    "kTdAGHmQISvxGaKX4edGSUGPeQLzfBR31RonWKgPfUeA0fp738emwADIlsQ/+/8Iu5Yodv"
    "vDOQt+bW7wXhgexBYZGqL45tbGVqsCnibBYixszAR4P1+CtsYgydSWaPT09+Obzb1DWbtL"
    "KBt4MlNC2HqRhJDBgFQOxBh5NIS2kwf/9B56avBjggz+vKvzQT4CKAWzYVxdd43b865hzA"
    "BpawifDQfhAbvnP3cP9ksw/tfxjYSZl5I4E75KgrVzFWbtBnkC7zG+95DeI8twIaVPxFNM"
    "8y56ZmqkFaT1YB4ljEEfL/UFoF4Ccvf8e1fUPKT0h5PEdvPy+LuEfTgKcy6ur36LiifG4v"
    "Ti+iQzBB7heRVmeFT+jcH2w027lrn94XCCqf3hsHBmi6w0qvyMsB8VuJ4QDh/EamjHRBlw"
    "e5xqkejGu0zdM/jk+voiNYNPOtkp+vXy5JyDLbHmhWwmkztX3QzCpocEEgZkeZTPeA6zh0"
    "gNc5oyA7UVkm5Hfyx0VifPR0ye5ncmdjuX57fd48svqdE4O+6ei5zd1F4SpW5mF0BcCfjW"
    "6f4OxE/w5/XVefagjct1/2yJPkGfEYN/ngGtJDZRcpT0Ihii/kPiYBYJPWg+PEHPMlI5if"
    "0M9Xmz95zRekCYKlZgSP/5jxvkQAlpfhaEnOFNUFdXVLW8R8k4NVza6XXEz1GBqTEkmN07"
    "Iw4cg86MwJ2GlV4GdXZFlSsPIC+CKZRccE3wdcc1rip6ru+ZnJVDMyL2Jaxm1WEKVikv7A"
    "vqWiCTa/RUVLiy4HnERJRKaWFE/JmBk5VMAFbIRi0XVgtFaGmmk+A8yC4p4kXSWWM0n6Dj"
    "IAWDGoF5jVGX8H9eh/RbXNOKTDqB33B3mEF0CDEcyF6K6gRx+P0XZGDjY8bQ0GUthRIvld"
    "8uU+Y5oiRn/mXRhmn1TuxBBxcoPJR6PTu/a4cToLlqpYHowrtfdnf39o52d/YOPx7sHx0d"
    "fNz5yMvK/uazjspkys5vQjpsJyWTSFxsrmbvjZflAnR74QqbSkTP0mohvbFCenLIbTc/0B"
    "2MijY0d+rl1MxDTjWGnatzsRVVUGVUYjUqnqIphYbiFM0qPIpP0byapTmnqLaNLcI2Jkfe"
    "EGaY/Ah8tjkYxWdpmnTlTGWHZaepRPyw+CQ9zB2kNqX+VKdoilAfoUtxhKJn1+bVTTHaac"
    "pGDff8LaPLNsw+nWpFJ8hqGODl4aKWbnw99MjPuGmGOE2pR7nJoyycEIxqHGiCpE42tLmD"
    "+gqHmROM0ugqWEviIXuA/0AjCXCH9wNiU+U1kXHvW05Ic4pTnuzBp1gSSk4o/u38i1HgMX"
    "F6fHt6fHbeenkbSfMSCesSVupq47x2mYQ5DEtp4XINhUv5fw77YokyKr+SytmDiZSzByXK"
    "2YOsTBn22YidF1y+2hBmfDErGBZk2kPoqJF/paYsAxNUtR1WuYSDUzIWZ+enncvji82D9m"
    "7GfS0apf0d7SioHQW1AqUJjoKk3w+jOqZ3dLgWdSzvJqZdsxbhDlKRcw7mlIJtjidbMc88"
    "ntOaYV4vhnlq/q2p7NpOY1i0vjBmGXAYuUhWADdLOjO8y6PMi5D+8EsFqCmDHjMER6Xm1d"
    "Qop6nK+LTlPYOUEHN+KwMgwlZl+JI0aw1eFAFhQldIsYZaAVm64IuqaM6+2tCVr+VgLQdr"
    "ObhG21SkPq9on8qQaRtVuY1qmDBlzGinSlpFlhPaV21VmcmVslfd8Bl/0zntlhmsdNSiVu"
    "4st3JHOcUUup6iqVis+ilZEa/qglpfkAc2Ba/aBlKF1AZ926MMWHDEEwC7R+Br9xTIqrc+"
    "yd9Re1F+PKH4L8iAGYm8yYGYVzt3mBExNiGBuw2+eTZjCAOCnRHojWQG78VgwDtAcKKSTd"
    "6ZR+S9j1Pe80P8/davgPM8FrDZ9h2+w11BLYDeoOABjYBNg6/g+1j4IfKvoNvboEs8RmyK"
    "QDBMvEH0LjhhBTWVnWoDSsBfkuKvO3k2WBRAKjsqmugTT/59fXPJR812GO84/w7oODzZQ3"
    "wMOQXAiPcdUPiIAC8fbKY8A9jhabPdas+kz5P9qyJLxgR1C5Jv6t47iRhZEmoEPYwUTFip"
    "IDkmao7oOF+VXCVxMVp0VVjbJI3mazOAalc27cr21uLBq65suR2gBkxXzYSbBTW56zXJQV"
    "B1x0kJI5y5CmUCPjh7HYu2iK6XRXQqg12NprqGbhh12uqYr1AfFDtpjilW0E2z/jsEtcJ+"
    "rRT2vmtNOdxpSj3cyzHcWuCqU36NL0irBmmGbLGcVyNB1VLsnKTYSQxceYErP8PzIxDdIj"
    "Yh/rPYbJowqV8dgcyinmQUZhJlY0AV8msS7GKhNWWN04Lqegmq6JkhD0NHeXSVXEiWJlu5"
    "W1TmEvemlQLzVQqYvuchbI4UbEL5lUBJwhXUDuy9unUUzuK9FVK8uAhbArS6YJ2D0iVSH0"
    "+1Uyiom7NlNMh8+4g8u2+b0rkodRVrGuvCu1AL6V+/HrWhCIe3ou5+2D/a/7h3uB9fhhqn"
    "lN2Bmvf2xZw9MDIwVdUrFdWhNUxLoWHS+uO1Gm6tP16r4db+/XPRI2vHMu1Y1jQ4tUp+7i"
    "p51c5aA646pkeBr/bcmwzZQs+96SxJJfaO8sfM8kNV/fma6V40a+ZtBzO/ZaN4eavEcpR+"
    "n+t1G1LuibBK4T/F8TgiYSwYtkGgVNz6BO7JE+DfOkqF5iAPAegFAShFIUB1t3WHS8J+6C"
    "RxPzGGAXpGRLvNM7fad5gSICJuRuCJN8Q/5AEhlwKbAfTMAf5VtufYlNEgfIj/tD0QBGLJ"
    "eB2Ll3/n8lkBerwBC3o270rfI8OJIo0kNDEYVeKMApIqgUYiKRilRcQZvb1Ku0GGr7qU2s"
    "UWx+aEdTVjRy8N7EroVBUnYcmDXarjcOkU0gt5pktLi1pabA7f3dAbtcMXIBWc4vhtyGLu"
    "MHiJ8g39i5qzspvgw1azC1FoVzd60ImWbgWrtYJaW61Vd1Q9Qlt+35Q4K+k10gqkXWhb00"
    "7mDKnGV4GvthWuvK0wxwZO53WuZhkrepxPyzA24aSumV2czdE8eFddpSyMX1wvURCOn3bX"
    "Lubr5WKu3Z51LHQBoB7iFVAW3DXUKP1l8jW9sI9TvaeXptUsS2NZlpQE4BET0eleyczS6k"
    "cUmzzScRyTh/pIxIBUevhLTb0Kj8ovIBpqvFB6o6qB0wnSGfm0huGu3d4aAqc2ZCzU7S27"
    "oheDbTMX/+sh5vmdc74uWhU1BZ8RFy889NmBg5ZCXZDMbpfpDPpBQaPPS2rNwRpqDh6QYj"
    "MoZsfC4isYwfthZ2cSsXZnp1iu3cnpDRAW366Y3KXPniSo9Lsnr757Qk3iogChChM5TfXG"
    "83ngkF6gZ2uogiZAq9ounaTR0kP2eeZx4xUmbYZs9aTgg4k24YOSTfggvwnrONm10jdp2/"
    "fKD/dMtu/6hLBj37LZGRwVhnikC7TLBDEoihoWHFUP7BBRFWGQBTHlPTtBUEUQhtMG1CEs"
    "GVohmwIeeUrGVqheVGllJtOcm7vDiRdcAjwcMqBgc2gPPBl/BI62ghiMoE4RiSEDMUSIBo"
    "3iMKJwC3DLO0IBdWWoBsG8/p5PR6LvGzR4VwYQGfYggh+gE3RxkxcELk8VElMPUsSzKZUf"
    "5goPOvNBPKfpCmkO/A183BLxF3eYr6/ggiMWRo5QYBGACQN83ftIfJCol7cAHGI+pD6CDE"
    "QUCJ8ZvOJ3cUhHMAsCeAacrjB6hH9OBvsqgSMB4cSBIyJWhPrDxQSNFEWnFfNHY4qVCxo5"
    "3J+AMTrcL+SLRFa5JoBPJPWBWcCLQpUmYL0CRsRyy2N2O4SOUxg1EtG8beBIXXM0CCLZ2z"
    "06jMNGxI+yQJHby+OLC8WFRgoliQ6+mTn4pkms0gVRKqvjvAkYJMEQaDX1+qmpE5xmVaku"
    "Q6rFusaKdZn3wolXWaubplpFK0Xtqt0Asmo7W5JGq3bzD92/rdTSqAlbl9ySdBalxPfM6i"
    "afHKGGuwrc1baIDJl2eMreQ+czkwwrzd8EyRvPXOqbwjumwaeahRi0Ve/F//P2+qrIuBaT"
    "ZHlE22Tgf1Ld+Fbc4V1r4+fLxqdP/6UE9+5ac+ISBTgpBjGCePPy+HsW/dOL65PsRBcVnD"
    "RI6kSebd63VDJnkNMulTjHZRojbRbqQ5TbrEIhEvJczdV61nJPdrEg+Yg8WpE/S5CsIMcw"
    "n2c4+KKqwgEHxVcQ3bl4lfEWGVKF+xUfbgmShhxuc2fGVuMwe/k/ZRbBLg=="
)

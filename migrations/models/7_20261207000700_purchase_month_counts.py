"""Exact list totals in constant time: purchase_month_counts, kept by triggers on purchases.

The table holds, per (user, first day of the UTC month of created_at, status), how many purchases
there are. The triggers (server/purchases/sql/purchase_counts_triggers.sql) keep it exact in the
writer's own transaction as relative updates, so every writer keeps it without code changes. The
lists of a user's purchases and cashback transactions read their total from at most
4 x (months of history) rows, and a deep offset finds its month from them
(docs/adr/0030-exact-totals-in-constant-time.md). The backfill counts the purchases already there
under the same lock as the trigger's creation, as migration 4 does for the monthly cap totals.
"""

from tortoise import BaseDBAsyncClient

from server.purchases.rules import sql_file

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return (
        """
-- No purchase changes between the backfill and the triggers: both are done under this lock, which
-- waits for the writers in flight and is held until the migration commits.
LOCK TABLE purchases IN SHARE ROW EXCLUSIVE MODE;

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
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TRIGGER IF EXISTS trg_purchases_month_counts_truncate ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_delete ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_update ON purchases;
DROP TRIGGER IF EXISTS trg_purchases_month_counts_insert ON purchases;
DROP FUNCTION IF EXISTS purchase_month_counts_truncate();
DROP FUNCTION IF EXISTS purchase_month_counts_follow();
DROP TABLE IF EXISTS purchase_month_counts;
"""


MODELS_STATE = (
    "eJztXVtv2zgW/iuCX5oAbprm2uksFnCcdMYzSVyk7raYzUJDS7StjUyqEpXE6Oa/L0ndJU"
    "q2bNmRZb60MclDUt/h5dxI/mxNsQ5N5+CrA+3WR+VnC4EppH8k0ttKC1hWlMoSCBiavKBL"
    "S/AUMHSIDTRCE0fAdCBN0qGj2YZFDIxoKnJNkyVijRY00DhKcpHxw4UqwWNIJrwj//4PTT"
    "aQDp+hE/y0HtSRAU090U9DZ23zdJXMLJ729Wvv8hMvyZobqho23SmKSlszMsEoLO66hn7A"
    "aFjeGCJoAwL12GewXvqfGyR5PaYJxHZh2FU9StDhCLgmA6P1j5GLNIaBwlti/5z80+9arN"
    "iXH+al92vvDe2FagOk46nKiu/tv9lvlcBTw4jxwkCEgffzxWsrAomntlij3d87d3vHZ7x2"
    "CztkbPNMDmHrhRMCAjxSzogIeTgFhpkFvzsBthj8kCCFP+3qepAPAErArKq3/YH65Wqgqi"
    "tA2pqCZ9WEaEwm9OfR6UkBxv/q3HGYaSmOM6azxJs7t37WkZfH8I7wnQBnAnXVAo7zhG3B"
    "MB/AZyJGWkBaDeZBQgR6NNU3gHoByIOr7wNW89RxfphxbPduOt857NOZn3Pdv/0tKB7jRf"
    "e6f5FigY1pXokRHpR/ZbBdf9GuZGy/P1tgaL8/yx3ZLCuJKt0jjEcBrheYwgeQGNqIKAXu"
    "kFJtEt1wlal6BF/0+9eJEXzRSw/RrzcXVxRsjjUtZBCe3LsdpBDWbMiQUAHJonxJc4gxhW"
    "KYk5QpqHWf9CD4Y6OjOr4/Ivy0vj1x0Lu5+jLo3HxOcOOyM7hiOUeJtSRI3UtPgLAS5Vtv"
    "8LvCfip/9W+v0httWG7wV4v1CbgEq/TzVKDHsQmSg6QXJhCNHmIbM0sYAu3hCdi6msiJrW"
    "dwRJudUEHrASJHMAN9+k9/3kETcEizo8CXDO+8ugasqu3dSqJUf2on5xHdRxmm6hQjMjFn"
    "FDgCzBWB6/qV3nh1DliVjQeQFkEO4FJwRfANohqbip7l2hoV5eCKiH32q2k6TN4spYVdRl"
    "0JZHyOdlmFjQXPxhp0HK4tzLC7MnC8kgXA8sWo7cJqowhtzXBikgc+wnmySDIrQvMJmCYU"
    "CKgBmH0EB5j+Mx/Sb2FNDRl0DL/p0TSF6BQgMOa9ZNUxYv/7r/HYQB1C4NQiLYERL5HfLj"
    "LmmawkFf550ZpZ9S6McQ/lGDyEdj0ju2r7A6C+ZqUx68LbX46Ojo/Pjw6Pzz6cnpyfn344"
    "/EDL8v5ms86LdMreb0w7bMc1k0BdrK9l75Wn5QZse/4MW0pFT9NKJb22Snqc5YaVZXQPwb"
    "wFzVp6OtVzkxPxsHd7xZaiEqaMUqJGyV00YdAQ7KJpg0f+Lpo1s9RnF5W+sU34xjjnVeaG"
    "yXLgk0HByN9Lk6SNc5WdFe2mHPGz/J30LLORGo7jLrWLJgjlFroVWyh8tgxa3RLcTlLWit"
    "3r94xuG5tdZ6kZHSOrgMHbI0VtHX9t+Ej3uGVYnKSUXK4zl1kQglpOAo2RVCmG1pepcyTM"
    "jGKURFcgWmIbGmP0J5xxgHu0HwBpoqiJVHjfdkKaMZzSZBs8hZpQfEDRb6dfDL2IiW7nS7"
    "dzedV6eR1N8wYy7xIS2mrDvHaRhjn1S0nlcgeVS/5/Bvt8jTIo30jj7OlCxtnTAuPsaVqn"
    "9PushsELFp1tEBE6mQUCC9SMKTDFyM+pKS3AeFUd+FVuIXMKeHF51e3ddK73TttHqfC1gE"
    "snhzJQUAYKSgNKHQIF8Wjkn+pYPtChz+rY3kVMhmZtIhykpOTsjSmB2BwOtnyZORrTUmDe"
    "LYF5afmtruLaYW1EtBFzZqlgGoRIlgA3TboyvNtjzAuQfv9LCagdAmyiMolKLKuJUU5SFc"
    "lp27sHCSGm8lYKQIj00vDFaXYavOAEhAYspsWqYgNk4YTPq6I+62pNZ77Ug6UeLPXgCn1T"
    "gfm8pH8qRSZ9VMU+qmnMlbGinyruFdlOaOf6qlKDK+GvuqMj/q7XHRQ5rOSpRWnc2W7jjn"
    "CICWw9eUMx3/RTMCPm2oJan6Gt7DFZta1wE1JbGRm2QxQdzGiCQiZQ+TroKrzq/Y/8d9Be"
    "kB8OKPoLEEULVN44I9bVzj0imPHGJ7AOlG+2QQhECkbmTBnOeAbtxXhMO4BRrJI92plHaL"
    "8LU97RTfzd/q8KlXl0xSAH9+geDRg1A/qNozzAmWI43lfQdcz/EP6X1+0DZYBtgg0HKh6b"
    "aIPwrbfDMmqHd6qtOFj5m1P8fc/3Bt1RgMM7ypoYYZv/3b+7oVwzTEI7Tr8DmCZNtiHlIa"
    "VQEKR9VxzwCBVa3ltMaYZi+LvNQau9kj2P96+MLhkSVK1Ivmp47yJqZMFRI2AjKBDCChXJ"
    "iKg+quN6TXKl1MVg0pURbeM0Uq5NASpD2WQo22urB3ND2TIrQAWYNs2FmwY1vurVKUBQdM"
    "dJgSCcugplATk4fR2L9Ijulkd0KYddha66mi4YVfrqiCswH+QHaUYUDQzTrP4OQWmw3ymD"
    "vWvpS7I7SSnZvR3slgpXlfpreEFaOUhTZJuVvGoJqtRi16TFLuLgyipc2RGe5UBwi9iC+K"
    "/is6nDoJ7LgdSkXoQLK6myIaAC/TUOdr7SmvDGSUV1txRV+EygjYAp3LoKLiRLkjXuFpW1"
    "nHuTRoH1GgU017Yh0mYCMaH4SqA4YQOtA8dzl47cUXzcIMOLBZHOQKsK1jUYXQLz8VIrhY"
    "C6PktGjdy3j9A2RobGg4sSV7Emsc69CzWXfv71qDVF2L8V9ej9yfnJh+Ozk/Ay1DCl6A7U"
    "bLQvouKBmoKprF0prw5pYdoKC5O0H+8Uu6X9eKfYLeP712JHloFlMrCsbnBKk/zaTfKilb"
    "UCXOWZHgG+MnJvMWRzI/eW8yQV+DuKHzPLsqr88zXLvWhWz9sOVn7LRvDyVoHnKPk+13wf"
    "UuaJsFLHf/LP47CESDFsK55Rcf+jMsFPCv3WWeJoDrShAmzvAEreEaCq27pHBcd+nEXO/Y"
    "QYeuipAe0Bzdxv3yMHK+zEzUx5og3RD3mA0HIUgyjwmQL8K2/PNBzieMeH6E/DVryDWPy8"
    "jk7Lv7XoqFCGtAEd2AbtysjG04VOGnFoQjDKnDPySMocNGJJHpc2cc7o9U3aNXJ8VWXUzv"
    "c41udYVz1W9MKDXTGbqmAnLHiwS7Qdbp1BeiPPdEltUWqL9ZG7a3qjtv8CpEBSjN6GzJcO"
    "vZcoXzG+qD4zuw4xbBWHEPl+dXUIzGDqlvBaC6il11p0R9UjMPj3LYmzkF4iLUDaAoa+7G"
    "BOkUp8BfhKX2HjfYUZMXC5qHOxyFgy4nxZgbEOO3XF4uJqgebeu+oiY2H44nqBgTB62l2G"
    "mO9WiLkMe5ZnoXMAtSGtwCHeXUO1sl/GX9Pz+7jUe3pJWimy1FZkSWgANtags9wrmWla+Y"
    "hinTkdnmOy4QiyMyClHv4SUzfhUfkNnIaKJspwVvbgdIx0RTmtZrjLsLeawCkdGRsNe0vP"
    "6M1gW8/JP/+IeXblXG+IVklLwSdI1QsbfjLBuCUwF8Sz20U2g5FXUB3RktJysIOWgwcoWA"
    "zyxTG/eANP8L4/PFxErT08zNdrDzN2A4jYtwsGd+GzJzEq+e7J3HdPHA1b0EOoxEBOUr3y"
    "eB6beOjZ2WpqoPHQKrdKx2mk9pB+njlqvMSgTZE1Tws+XWgRPi1YhE+zi7A8J7tT9ibp+2"
    "48u1fyfVenhHVc3SDXWKiBhXntIvULsFKqiaXutYu6F9b4rUjLLFUpUrlW1XatSj2Cie3S"
    "qkqSqomqd+X6igdZuZUtTiP1lezrreVUlYiigQP27GSBAXt2kjtgWVY6AsLBrq2Vt2NkCC"
    "XcZeAut0SkyKQXL325iks0PC01fmMkrzxyHVdjLp8a72o6JMAQPYL6x5f+bZ7FKCRJy4iG"
    "RpT/8dPMryUd3rfe/Hx58/Hjfx2MhvetNUmJDJyEgBhAvHfT+Z5Gv3vdv0gPdFbBhchf/U"
    "paJ7QNbdIS6ZxeTrtQ44zK1EbbzD1hK1xmBUdsfZmrtqHm1Vz+mK9IPkLbKSmfxUgaKDGs"
    "525pOqnKSMBe8QaiuxZXKW2RQFEMe/7mFiOpyea2dmGsGZvZy/8Bdru+1w=="
)

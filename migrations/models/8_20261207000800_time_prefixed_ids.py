"""New purchases, cashback transactions and audit rows get time-prefixed ids (server/sql/time_prefixed_uuid.sql).

Their ids were gen_random_uuid(): each insert landed on a random page of the primary key index
(and of cashback_transactions' unique purchase_id), at 10 million purchases a page to read and,
after every checkpoint, a full-page image written to the WAL per index. With the time in the first
48 bits (the version stays 4, as API.md §1 says) new ids go to the indexes' rightmost pages
(docs/adr/0047-time-prefixed-ids.md). Existing ids keep their values; only the defaults change, so
the migration takes a brief lock per table and rewrites nothing.

record_purchase() takes its purchase's id from the column default from now on (it drew its own
gen_random_uuid() before), so the default is the one place that says how new ids are made. The
downgrade restores the random defaults and keeps that body, which works with either.
"""

from tortoise import BaseDBAsyncClient

from server.ids import SQL_FILE
from server.purchases.rules import sql_file

RUN_IN_TRANSACTION = True
TABLES = ("purchases", "cashback_transactions", "audit_logs")


async def upgrade(db: BaseDBAsyncClient) -> str:
    return (
        SQL_FILE.read_text(encoding="utf-8")
        + "".join(f"\nALTER TABLE {table} ALTER COLUMN id SET DEFAULT time_prefixed_uuid();" for table in TABLES)
        + "\n"
        + sql_file("record_purchase")
    )


async def downgrade(db: BaseDBAsyncClient) -> str:
    return (
        "".join(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT gen_random_uuid();\n" for table in TABLES)
        + "DROP FUNCTION time_prefixed_uuid();\n"
    )


MODELS_STATE = (
    "eJztXWlv2zga/iuEgUUSwE3TXO10Fgvk6kx2chSJuy1ms9DQEu1oI5GqKDU1uv3vy0OSdV"
    "CyZcu27PBLG5N8Serh9Z7kj45LLOTQ3U8U+Z334EcHQxexPzLpXdCBnjdO5QkB7DuiYMhK"
    "iBTYp4EPzYAlDqBDEUuyEDV92wtsglkqDh2HJxKTFbTxcJwUYvtriIyADFHwKDry7/+wZB"
    "tb6Dui8U/vyRjYyLEy/bQt3rZIN4KRJ9I+fbo8/yBK8ub6hkmc0MXj0t4oeCQ4KR6GtrXL"
    "aXjeEGHkwwBZqc/gvYw+N06SPWYJgR+ipKvWOMFCAxg6HIzO3wchNjkGQLTE/zn8R9S1VL"
    "H7r865/LW9xXph+BBbxDV48e2drZ1ODTxNgvlY2Djg4P34KdsagyRSO7zRs99P7rYPjkXt"
    "HqHB0BeZAsLOT0EIAyhJxUCMkUcutJ0i+GeP0FeDnxDk8GddXQzyMUAZmA3j5rZn3F/0DG"
    "MOSDsu/G44CA+DR/Zz/+iwAuN/ndwJmFkpgTNhq0SunZsoa1/mcbzH+D5C+ogsw4OUPhNf"
    "Mc176HugRlpB2gzmccIY9PFSXwLqFSD3Lr70eM0upV+dNLbb1ydfBOzuKMq5ur35LS6eGo"
    "uzq9vT3BD4hOXVmOFx+RWDHUabdiNz+83xFFP7zXHpzOZZWVTZGWF/U+B6Shh8EKuhHRPl"
    "wO0zqmWim+wyTc/g09vbq8wMPr3MT9FP16cXDGyBNStkByL58qaXQ9j0EUfCgEER5XOWE9"
    "guUsOcpcxBbUWku/EfS53V6fMRk+fFnYm9y+uL+97J9cfMaJyf9C54zn5mL4lTt/MLIKkE"
    "fL7s/Q74T/Dn7c1F/qBNyvX+7PA+wTAgBvs8A1ppbOLkOOknZ4gGT6mDmSf0ofn0DH3LyO"
    "Sk9jM0YM0+MkbrCWGqWIER/Yc/7pADBaTFWRBxhneyrh6van2PknFqtLSz64idoxxTwyU4"
    "eHRGDLgAOnMCdxZVei3r7PEqNx5AVgRTKLjghuDrjWvcVPS80DcZK4fmROxjVM2mwyRXKS"
    "sccupGIBNr9IxXuLHg+cRElAppYUTCuYETlUwBVsRGrRdWS0VobaYT5zzIPinjRbJZYzSf"
    "oeMgBYMag3mLUY+wfyZD+jmpaUMmHcfP3XdziLoQw6HoJa+OE0fff0WGNj4JAuR6QUehxM"
    "vkd6uUeQ4vyZh/UbRlWr1Te3iJSxQeSr2eXdy1ownQXrXSkHfh1S/7+wcHb/f3Do7fHR2+"
    "fXv0bu8dKyv6W8x6WyVTXv7GpcNuWjKJxcX2avZWvCyXoNuLVthMInqeVgvprRXS00Nue8"
    "WBvsSobEPzZl5O7TzkVGN4eXPBt6IaqoxarEbNUzSj0FCconmFR/kpWlSztOcU1baxZdjG"
    "xMgb3AxTHIEPNgOj/CzNkm6cqey46jQViB+Xn6THhYPUpjSc6RTNEOojdC2OUPTds1l1M4"
    "x2lrJVw714y+i6DXNIZ1rRKbIGBnh9uKi1G18ffWNn3CxDnKXUo9zmUeZOCEY9DjRF0iQb"
    "2t5BncBhFgSjLLoK1pL4yB7iP9BIAHzJ+gGxqfKayLn3rSekBcUpS/bhcyIJpScU+3b2xU"
    "h6TJyd3J+dnF90fq5G0rxG3LqElbraJK9bJWG6USktXL5A4VL8X8C+XKKMy2+kcvZoKuXs"
    "UYVy9igvU0Z9NhLnBY+tNoQDtpgVDAsybRc6auQn1JRnYGRVu1GVazg4FWNxfnF2eX1ytX"
    "3U3c+5r8WjdLinHQW1o6BWoLTBUZAMBlFUx+yODre8jvXdxLRr1jLcQWpyznJOKdjmZLKV"
    "88zjOa0Z5pfFMM/Mv7WVXdtrDYs24MYsA7qxi2QNcPOkc8O7Psq8GOk3v9SAmgbQDwzOUa"
    "l5NTXKWaoqPm19zyAlxIzfygGIsFUbvjTNiwYvjoAwocelWEOtgKxc8GVVtGdfbenK13Kw"
    "loO1HNygbSpWn9e0T+XItI2q2kblpkwZc9qp0laR9YR2oq0qN7ky9qo7NuPvLs96VQYrHb"
    "WolTvrrdxRTjGFrqdsKparfipWxERdUOcj8sE251W7QKiQumBg+zQAFhyxBBA8IvCpdwZE"
    "1Tvvxe+4vTg/mVDsFwyAGYu86YFYVDsPOCB8bCICbxd89u0gQBgQ7IxAfyQyWC+GQ9YBgl"
    "OVbLPOfEP+6yTlNTvEX+/8ChjPYwE72H3AD7jHqTnQWxQ8oRGwqfwKto9FHyL+kt3eBT3i"
    "B8SmCMhhYg2iV/KE5dRUdKoLKAF/CYq/HsTZYFEAqegob2JAfPH37d01GzXbCVjH2XdAx2"
    "HJPmJjyCgARqzvgMJvCLDycjNlGcCOTpvdTncufZ7oXx1ZMiFoWpBcqXvvNGJkRagR9DFS"
    "MGGVguSYqD2i42JVcrXExXjR1WFt0zSar80Bql3ZtCvbqsWDia5shR2gAUw3zYSbBzW967"
    "XJQVB1x0kFI5y7CmUKPjh/HYu2iE60iEpeeNe26C5n1gzPR9KCxbswwUhaJGilnXQmM16D"
    "BryWbiNNWvCCUKFUKHfdHFNsoPNm8zcLajX+i1Ljh54143BnKfVwr8dwazGsSak2uTatHq"
    "Q5suXyY60EVcu2C5JtpzF7FcWw4gwvjkB8t9iU+M9jyWnDpJ44ArlFPc0ozCXgJoAqpNo0"
    "2OWibMZGp8VXLb7ySx4C5GPoKA+0isvLsmQbd+PKQmLktKpgsaoCM/R9hM2Rgnmovj4oTb"
    "iBOoODiVtH6Sw+2CB1jIewxUFrCtYFqGJiVfNMO4WCuj1bRotMvexItwe2KRyRMte2ZrEu"
    "vTe1lH7yVaotRTi6QXX/zeHbw3cHx4fJxalJStV9qUXPYMzYAyMHU11tU1kdWu+0FnonrV"
    "V+UcOttcovarh1LMBCtMvaCU07obUNTq2oX7iiXrWzNoCrjv9R4Ku9/KZDttTLbzb7UoUV"
    "pPrhs+JQ1X/qZrbXz9p5M8Lc797ElqJzOJJvdFVYk5Iy3WmsSoYFR6mHxKYMEuLhOVG0zl"
    "jy6wKpNWT/OyTYeZ+KrxENIAvYWMbr8ALK8JxODtYFN/eAo3AgOk08kAKzXZbOmhZV8kAd"
    "GrqA8GgcyDu8RR8wb5sCF7FZDCBmU519mAzbIRiJngGXfVofAYyGkEey7wIeaQQt1x53CT"
    "g2DXjttCoaiTWZQ6VOGJIk/AvIMKQHPCEOiX8C69ByQpBWr8FukZ2rKR12uYGRTSS1SkCN"
    "dVT8RV8bwpdbEbN7FzpOqVI6plmtDrrZF70O9t8eJ6po/qNKC31/fXJ1pVBFKxiIijfRVF"
    "zE2unxl/ASWkEqXE3Mh+LJ0Qp2Jvsw6RQMTf5t1Fpxz+WByGrmg539j+SZneB4lIlJRj47"
    "/nx57JXFPjfd1gOuiHeux+BI9IyYVnA5XcbLEMDP+RF4Zg2xD3lCyOMMCUDfGcC/ivY4o0"
    "Jl3DT7aTO+QUSgCy7BYuVfeWxWgD5rwIK+zboy8Ik7VYi1gCYBYwbOpkaENU+So6S5m43j"
    "btoTz75WHI4+lRf0PqlWfWvVd3uUiC19SiR6+lrBKY4fxS7nDuUT3Ct0oW7Pym6Dm37D/t"
    "CRk6DRh068dGu44CmotQue6nLOb9AW3zcjzkp6jbQCaQ/a1qyTOUeq8VXgqx2fNt7xaS5d"
    "1ySWsWZQ3awMYxtO6obZxfkUh3BEQrWyUOZUsoCeKKOj6F7gsxg6hktf91ICqI9YBTSQly"
    "y2Sn+ZfkY46uNMDwlnaTXL0lqWJSMB+MREdLbnwfO0+vXoNo90EpTtowHiAa21XjxVU8+0"
    "p7ZsjJcQ2j1eKP1R3bthUqRz8mktw1378LcETm3IWKoPf35FLwfbdi7+ybfoFHfOxfqb19"
    "QUfEBMvPDRBwcOOwp1QTq7W6UzGMiCxoCV1JqDF6g5eEKKzaCcHYuKb+B1JG/29qYRa/f2"
    "yuXavYLeAGH+7YrJXfneW4pKP/g28cE3ahIPSYRqTOQs1Yrn89Ahfalna6mCRqJVb5dO02"
    "jpIYtnuvEakzZHtnlS8NFUm/BRxSZ8VNyE9aUfL0rfpG3fGz/cLYnzOAktO6iKWM0W6FYJ"
    "YpAXnTtWlZji0kAZVCFjipPo0SS0QjQFfPKcjq2YKVa12eaSWFUeySHxcMiQgm3XHvoimB"
    "oc78gYDFmnCBnlgRg8RIPGcRhxuAW4F4Gp1BOhGgSz+vshHcmwVRlBKyNZKQ9+gI7s4jYP"
    "WvVYKpeY+jwwlSJKxYd53IPOfOLviHtcmgN/A+92ePzFA2brS97WGESRIxRYBGASALbuQ8"
    "Q/iNfLWgAOMZ8yH0GGPAqEzQxW8askpEPOAgnPkNFVh8RmsK8TOCIJpw4cWWpIbFmofTl/"
    "NKbYuKCR48MpGKPjw1K+iGfpkFgdEqtDYtvg7/niQmIFJ3RFlMrqJG8KBokzBFpNra+Jj6"
    "5NGvOfdWW9HKkW9lor7HWzLCHxa+t6s1SbaLtoXOErIau336VptMK3gOeKZZlWTdimpJm0"
    "CykloW/WNwQVCDXcdeCut0XkyLQbVP6q3TAwiVtr/qZIVjxzaWhyn5kWn2oWCqDtKPz4/3"
    "l/e1NmcktI8jyibQbgf0IJuSru8KGz9ePn1vv3/6UE9x86C+ISOTgZBjGGePv65Ese/bOr"
    "29P8ROcVnLZIFkW+bT52VJKozOlWyqHjMq2RQUu1JMptVqEmiXiu9upCG3kKpFyQZIIyrc"
    "mfpUg2kGNYzEtjbFHV4YBl8Q1EdyG+ZqzFAKmCAMsPtxRJSw63hTNjm3GY/fw/SkbArw=="
)

"""server/pagination.page_of: a page of a queryset and its exact total (API.md §1.5), read in one
snapshot, with the count skipped when the page itself ends the list."""

from __future__ import annotations

from server.flags.models import FeatureFlag
from server.pagination import page_of

NEWEST = ("-created_at", "-id")


async def _flags(conn, count: int, prefix: str = "page") -> None:
    await conn.execute(
        "INSERT INTO feature_flags (key, created_at) "
        "SELECT $1 || '_' || n, now() - n * interval '1 second' FROM generate_series(1, $2) AS n",
        prefix,
        count,
    )


async def test_the_total_is_counted_in_the_page_s_snapshot(client, conn):
    await _flags(conn, 5)
    counted = []

    async def insert_then_count(tx):
        # Another connection commits a matching row between the slice and the count.
        await _flags(conn, 1, prefix="late")
        counted.append(await FeatureFlag.all().using_db(tx).count())
        return counted[-1]

    rows, total = await page_of(
        FeatureFlag.all(), fields=("key",), order_by=NEWEST, offset=0, limit=2, total=insert_then_count
    )
    assert [row["key"] for row in rows] == ["page_1", "page_2"]
    assert total == 5 and counted == [5]
    assert await FeatureFlag.all().count() == 6  # committed, but after the page's snapshot


async def test_a_page_that_ends_the_list_is_its_own_total(client, conn):
    await _flags(conn, 3)

    async def must_not_count(tx):
        raise AssertionError("counted although the page ended the list")

    for offset, limit, keys in ((0, 10, 3), (2, 10, 1), (0, 3, None)):
        if keys is None:  # a full page may have more after it: counted
            rows, total = await page_of(FeatureFlag.all(), fields=("key",), order_by=NEWEST, offset=offset, limit=limit)
            assert len(rows) == 3 and total == 3
            continue
        rows, total = await page_of(
            FeatureFlag.all(), fields=("key",), order_by=NEWEST, offset=offset, limit=limit, total=must_not_count
        )
        assert len(rows) == keys and total == 3


async def test_an_offset_past_the_end_counts_the_real_total(client, conn):
    await _flags(conn, 4)
    rows, total = await page_of(FeatureFlag.all(), fields=("key",), order_by=NEWEST, offset=50, limit=10)
    assert rows == [] and total == 4
    rows, total = await page_of(FeatureFlag.filter(key="absent"), fields=("key",), order_by=NEWEST, offset=0, limit=10)
    assert rows == [] and total == 0

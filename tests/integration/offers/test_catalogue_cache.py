"""/offers/active pages are kept per instance and dropped on every catalogue change (server/offers/catalogue.py)."""

import asyncio
import time

from server.db import parse_database_url
from server.offers.catalogue import CataloguePages
from server.offers.service import utc_today
from tests.integration.merchants.factory import days, insert_merchant, insert_offer

ACTIVE = "/api/v1/offers/active"


async def active_names(client, token) -> list[str]:
    response = await client.get(ACTIVE, token=token)
    assert response.status_code == 200, response.text
    return [offer["merchant_name"] for offer in response.json()["data"]]


async def eventually(condition, seconds: float = 5.0):
    """Poll `condition` (async, returns a truthy value when met) until the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        value = await condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_a_write_by_another_process_reaches_the_cached_page_by_notification(client, conn, user):
    shop = await insert_merchant(conn, "Shop")
    await insert_offer(conn, shop, start=days(-1), end=days(30))
    assert await active_names(client, user.token) == ["Shop"]
    assert client.app.ctx.catalogue.listening

    # Another instance, the ops CLI or psql: only the NOTIFY tells this instance.
    other = await insert_merchant(conn, "Apex")
    await insert_offer(conn, other, start=days(-1), end=days(30))
    assert await eventually(lambda: _names_are(client, user.token, ["Apex", "Shop"]))

    await conn.execute("UPDATE merchants SET active = false WHERE id = $1", other)
    assert await eventually(lambda: _names_are(client, user.token, ["Shop"]))


async def _names_are(client, token, expected) -> bool:
    return await active_names(client, token) == expected


async def test_this_instance_reads_its_own_writes_at_once(client, conn, user, admin):
    shop = await insert_merchant(conn, "Shop")
    offer = await insert_offer(conn, shop, start=days(-1), end=days(30))
    assert await active_names(client, user.token) == ["Shop"]

    response = await client.patch(f"/api/v1/offers/{offer}/status", token=admin.token, json={"status": "inactive"})
    assert response.status_code == 200
    assert await active_names(client, user.token) == []

    response = await client.patch(f"/api/v1/offers/{offer}/status", token=admin.token, json={"status": "active"})
    assert response.status_code == 200
    assert await active_names(client, user.token) == ["Shop"]

    response = await client.patch(f"/api/v1/merchants/{shop}/status", token=admin.token, json={"status": "inactive"})
    assert response.status_code == 200
    assert await active_names(client, user.token) == []


async def test_without_its_listening_connection_the_instance_reads_the_database(client, conn, user):
    shop = await insert_merchant(conn, "Shop")
    await insert_offer(conn, shop, start=days(-1), end=days(30))
    assert await active_names(client, user.token) == ["Shop"]

    catalogue = client.app.ctx.catalogue
    first_listen = catalogue.listens
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'clicknback-catalogue' AND datname = current_database()"
    )
    await conn.execute("UPDATE merchants SET name = 'Renamed' WHERE id = $1", shop)  # its NOTIFY is lost
    # The instance notices the lost connection, drops its pages and listens again.
    await eventually(lambda: _listening_again(catalogue, first_listen))
    assert await active_names(client, user.token) == ["Renamed"]
    await conn.execute("UPDATE merchants SET name = 'Again' WHERE id = $1", shop)
    assert await eventually(lambda: _names_are(client, user.token, ["Again"]))


async def _listening_again(catalogue, first_listen: int) -> bool:
    return catalogue.listening and catalogue.listens > first_listen


async def test_a_render_that_overlaps_a_change_is_served_but_not_kept(database_url):
    pages = CataloguePages(parse_database_url(database_url))
    await pages.start()
    renders = []

    async def render_during_a_change() -> bytes:
        renders.append(1)
        pages.invalidate()  # a change lands while this page is being read
        return b"{}"

    async def render() -> bytes:
        renders.append(1)
        return b"{}"

    try:
        today = utc_today()
        await pages.page(today, 0, 20, render_during_a_change)
        await pages.page(today, 0, 20, render)  # not kept: read again
        await pages.page(today, 0, 20, render)  # kept by the previous call
        assert len(renders) == 2
        await pages.page(today, 20, 20, render)  # another page is another key
        assert len(renders) == 3
    finally:
        await pages.close()
    assert not pages.listening

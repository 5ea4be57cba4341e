"""Readiness under a stream of callers: never two checks at once on the probe's one connection.

A check that had just finished used to clear the probe's in-flight slot from its done callback
even after a newer check had taken the slot. The next caller then started a third check beside the
second, on the same connection: asyncpg refused it ("another operation is in progress") and every
caller sharing it got 503 from a healthy service (the bench saw 30-304 of them per 5 s at c64).
"""

import asyncio

from server.health.probe import ReadinessProbe

ARRIVALS = 3000  # callers, one new one per loop pass, like requests arriving under load


async def test_callers_arriving_every_pass_all_see_a_ready_database(database_url):
    probe = ReadinessProbe(database_url)
    loop = asyncio.get_running_loop()
    callers: list[asyncio.Future] = []
    all_arrived = loop.create_future()

    def arrive() -> None:
        callers.append(asyncio.ensure_future(probe.check()))
        if len(callers) < ARRIVALS:
            loop.call_soon(arrive)  # the next caller arrives on the next pass
        else:
            all_arrived.set_result(None)

    try:
        arrive()
        await all_arrived
        results = await asyncio.gather(*callers)
    finally:
        await probe.close()
    failures = [r for r in results if r["database"] != "ok"]
    assert failures == [], f"{len(failures)} of {len(results)} checks failed, e.g. {failures[:1]}"

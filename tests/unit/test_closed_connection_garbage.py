"""A connection that closes mid-request is freed at once, not left as a cycle for the collector.

A serving process runs the collector rarely (server/app.py), so a cycle per aborted request
would grow RSS until the young generation reaches its threshold (docs/benchmarks.md, the soak).
"""

import asyncio
import gc

import pytest
from sanic import Sanic
from sanic.http import Http
from sanic.response import text

from devtools.local_postgres import free_port
from server.drain import DrainingHttpProtocol

ABORTED = 20


class SlowApp:
    def __init__(self) -> None:
        Sanic.test_mode = True
        self.app = Sanic("closed_connection_garbage", configure_logging=False)
        self.started = asyncio.Event()
        self.cancelled = 0
        self.app.get("/slow")(self.slow)

    async def slow(self, request):
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return text("late")


@pytest.fixture
async def server():
    slow = SlowApp()
    port = free_port()
    served = await slow.app.create_server(
        host="127.0.0.1", port=port, protocol=DrainingHttpProtocol, access_log=False, return_asyncio_server=True
    )
    await served.startup()
    await served.after_start()
    yield slow, port
    served.close()
    await served.wait_closed()


async def abort_mid_request(slow: SlowApp, port: int) -> None:
    """Send a request and close the connection while its handler runs."""
    slow.started.clear()
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
    await asyncio.wait_for(slow.started.wait(), 5)
    writer.close()
    await writer.wait_closed()


def live_http_states() -> int:
    return sum(1 for thing in gc.get_objects() if isinstance(thing, Http))


async def test_requests_aborted_by_the_client_leave_no_cycle(server):
    slow, port = server
    gc.collect()
    gc.disable()  # from here, whatever outlives its connection is kept by a cycle
    try:
        for _ in range(ABORTED):
            await abort_mid_request(slow, port)
        # The server learns of each close on a later turn of the loop (bounded wait).
        for _ in range(500):
            if slow.cancelled == ABORTED:
                break
            await asyncio.sleep(0.01)
        assert slow.cancelled == ABORTED
        await asyncio.sleep(0)  # one more turn: the cancelled connections' tasks end
        assert live_http_states() == 0
    finally:
        gc.enable()

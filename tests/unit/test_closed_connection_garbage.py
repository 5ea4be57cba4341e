"""A connection that ends mid-request is freed at once, not left as a cycle for the collector.

A serving process runs the collector rarely (server/app.py), so a cycle per aborted request
would grow RSS until the young generation reaches its threshold (docs/benchmarks.md, the soak).
"""

import asyncio
import gc

import pytest
from sanic import Sanic
from sanic.exceptions import RequestCancelled
from sanic.http import Http
from sanic.request import Request
from sanic.response import text

from devtools.local_postgres import free_port
from server.drain import DrainingHttpProtocol

ABORTED = 20

# How the request ends: the client hangs up while the handler waits, which cancels it; the client
# hangs up and the handler answers anyway (it finished its database work first); or the
# connection is already closing when the answer is sent, before Sanic has been told it is lost.
ENDINGS = ["cancelled", "answers-after-hang-up", "answers-while-closing"]


class SlowApp:
    def __init__(self, ending: str) -> None:
        Sanic.test_mode = True
        self.app = Sanic("closed_connection_garbage", configure_logging=False)
        self.started = asyncio.Event()
        self.ended = 0
        self.ending = ending
        self.app.get("/slow")(self.slow)

    async def slow(self, request):
        self.started.set()
        try:
            if self.ending == "answers-while-closing":
                request.transport.close()
                return text("late")
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self.ending == "cancelled":
                raise
        finally:
            self.ended += 1
        return text("late")


@pytest.fixture(params=ENDINGS)
async def server(request):
    slow = SlowApp(request.param)
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


def connection_objects() -> set[int]:
    """Sanic's per-connection states and requests, and the cancellations that ended them, by id
    (earlier tests in the same process may have left some of their own)."""
    return {id(thing) for thing in gc.get_objects() if isinstance(thing, Http | Request | RequestCancelled)}


async def test_requests_aborted_mid_way_leave_no_cycle(server):
    slow, port = server
    gc.collect()
    gc.disable()  # from here, whatever outlives its connection is kept by a cycle
    try:
        before = connection_objects()
        for _ in range(ABORTED):
            await abort_mid_request(slow, port)
        # The server learns of each close on a later turn of its loop, and then the connection's
        # task ends: wait for both (bounded). With the collector off, a cycle never goes away.
        for _ in range(500):
            if slow.ended == ABORTED and not connection_objects() - before:
                break
            await asyncio.sleep(0.01)
        assert slow.ended == ABORTED
        assert connection_objects() - before == set()
    finally:
        gc.enable()

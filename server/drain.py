"""The instances' HTTP/1.1 protocol: draining after a stop signal (API.md §1.9), so that no kept
connection is closed under a client's feet, and no garbage cycle left behind by a closed one.

Sanic closes every idle keep-alive connection at once on a stop signal. A client that keeps
connections (nginx's upstream keepalive above all) may be sending its next request on one at that
very moment: it meets a connection error, and nginx never retries a POST that it has sent (it may
have been processed), so a purchase ingestion would fail. The switch repoints nginx at the new
instances without a reload (docs/adr/0008-keepalive-switch-without-reload.md), so nginx's cached
connections to this instance outlive the switch.

Here, while draining, every answer carries `Connection: close` (server/app.py), which takes a
connection out of nginx's cache without a race, and an idle connection is closed only once it has
been idle longer than nginx keeps an idle upstream connection (PROXY_KEEPALIVE_SECONDS, rendered
into nginx's upstream block): by then nginx has closed it itself, or will never pick it again.
"""

from __future__ import annotations

from asyncio import CancelledError
from time import monotonic

from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from server.listen import PROXY_KEEPALIVE_SECONDS

# Past nginx's timeout by more than its timer's lag on a busy host: nginx can no longer send on it.
CLOSE_IDLE_AFTER_SECONDS = PROXY_KEEPALIVE_SECONDS + 1.5


def _in_flight(connection: object) -> bool:
    http = getattr(connection, "_http", None)
    return http is not None and http.stage is not Stage.IDLE


class CycleFreeHttp(Http):
    """Sanic's per-connection HTTP/1.1 state, letting go of its request and response when the
    connection ends.

    Each of them points back at this object (`.stream`). Sanic unlinks them after every answered
    request, but not when the connection ends mid-request: that connection then stays in memory as
    a cycle (about 8 KiB with its transport and buffers) until the collector runs, which a serving
    process does rarely (server/app.py). Under the soak, an instance's RSS grew by 0.3 MiB a minute
    (docs/benchmarks.md, "The soak's RSS growth"; docs/adr/0050).
    """

    __slots__ = ()

    async def http1(self) -> None:
        try:
            await super().http1()
        finally:
            # None is what Sanic's own init_for_request sets them to between requests.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

    async def error_response(self, exception: Exception) -> None:
        await super().error_response(exception)
        if isinstance(exception, CancelledError):
            # The connection is gone and the answer done. Sanic's loop keeps the raised cancellation
            # in a local, and its traceback holds that loop's frame: a second cycle, request and all.
            exception.__traceback__ = None


class DrainingHttpProtocol(HttpProtocol):
    """Sanic's HTTP/1.1 protocol, closing an idle connection only once its client cannot use it."""

    HTTP_CLASS = CycleFreeHttp

    def close_if_idle(self) -> bool:
        if self.transport is None or self.transport.is_closing():
            return True
        if _in_flight(self):
            return False  # its answer says Connection: close, and Sanic closes it after that
        idle_for = monotonic() - self._time
        if idle_for < CLOSE_IDLE_AFTER_SECONDS:
            self.loop.call_later(CLOSE_IDLE_AFTER_SECONDS - idle_for, self.close_if_idle)
            return False
        return super().close_if_idle()

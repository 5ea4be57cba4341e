"""Draining after a stop signal (API.md §1.9): no kept connection is closed under a client's feet.

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

from time import monotonic

from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from server.listen import PROXY_KEEPALIVE_SECONDS

# Past nginx's timeout by more than its timer's lag on a busy host: nginx can no longer send on it.
CLOSE_IDLE_AFTER_SECONDS = PROXY_KEEPALIVE_SECONDS + 1.5


def _in_flight(connection: object) -> bool:
    http = getattr(connection, "_http", None)
    return http is not None and http.stage is not Stage.IDLE


class DrainingHttpProtocol(HttpProtocol):
    """Sanic's HTTP/1.1 protocol, closing an idle connection only once its client cannot use it."""

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

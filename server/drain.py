"""Draining after a stop signal (API.md §1.9): connections stay open while requests are in flight.

Sanic closes every idle keep-alive connection at once on a stop signal, so a probe sent on a kept
connection (nginx's upstream keepalive, a load balancer's health check) would meet a connection
error instead of readiness's 503 for as long as in-flight requests last. Here an idle connection
stays open while another connection still has a request in flight; a request on it is answered, with
`Connection: close` (server/app.py), so the drain never outlasts the requests it waits for.
"""

from __future__ import annotations

from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol

RECHECK_SECONDS = 0.05


def _in_flight(connection: object) -> bool:
    http = getattr(connection, "_http", None)
    return http is not None and http.stage is not Stage.IDLE


class DrainingHttpProtocol(HttpProtocol):
    """Sanic's HTTP/1.1 protocol, closing idle connections only once nothing is in flight."""

    def close_if_idle(self) -> bool:
        if not _in_flight(self) and any(_in_flight(other) for other in self.connections if other is not self):
            self.loop.call_later(RECHECK_SECONDS, self.close_if_idle)
            return False
        return super().close_if_idle()

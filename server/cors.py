"""CORS for the browser clients in CORS_ALLOWED_ORIGINS, and OPTIONS/HEAD on every route.

A response to an allowed origin names that origin (never `*` with credentials) and exposes the
request id and Retry-After. Preflights get the route's methods and the headers clients send.
Requests without an Origin header (server-to-server, probes) pay one dictionary lookup.
"""

from __future__ import annotations

from collections import defaultdict

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from server.http import Response

ALLOW_HEADERS = "authorization, content-type, x-request-id"
EXPOSE_HEADERS = "x-request-id, retry-after"
PREFLIGHT_MAX_AGE_SECONDS = "600"


class CorsPolicy:
    def __init__(self, allowed_origins: tuple[str, ...]) -> None:
        self.any_origin = "*" in allowed_origins
        self.origins = frozenset(origin.rstrip("/") for origin in allowed_origins)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def add_headers(self, request: Request, response: HTTPResponse) -> None:
        origin = request.headers.get("origin")
        if origin:
            headers = response.headers
            # Allowed or not, the answer depends on the origin: a shared cache must not serve a
            # refused origin's answer (without CORS headers) to an allowed one, or the reverse.
            headers["Vary"] = "Origin"
            if self.allows(origin):
                headers["Access-Control-Allow-Origin"] = origin
                headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def preflight_response(request: Request, methods: str) -> HTTPResponse:
    """204 naming the route's methods; the preflight headers only for a CORS preflight."""
    headers = {"Allow": methods}
    if request.headers.get("access-control-request-method"):
        origin = request.headers.get("origin", "")
        if origin and request.app.ctx.cors.allows(origin):
            headers.update(
                {
                    "Access-Control-Allow-Methods": methods,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_SECONDS,
                }
            )
    return Response(status=204, headers=headers)


def add_options_and_head_routes(app: Sanic) -> None:
    """One OPTIONS route per path, HEAD beside every GET: added once, before the router is finalised
    (adding them route by route after start-up would rebuild the router each time). Their error format
    is given, as the blueprints' is by FALLBACK_ERROR_FORMAT: otherwise Sanic reads and parses each
    handler's source to guess it, a cost paid at every app's start."""
    methods_by_path: dict[str, set[str]] = defaultdict(set)
    get_routes = []
    for route in list(app.router.routes):
        methods_by_path[route.path].update(route.methods)
        if "GET" in route.methods and "HEAD" not in route.methods:
            get_routes.append(route)
    for route in get_routes:
        app.add_route(
            route.handler,
            "/" + route.path,
            methods=["HEAD"],
            name=route.name.split(".", 1)[-1].replace(".", "_") + "_head",
            error_format="json",
        )
        methods_by_path[route.path].add("HEAD")
    for index, (path, methods) in enumerate(sorted(methods_by_path.items())):
        allowed = ", ".join(sorted(methods | {"OPTIONS"}))

        async def options(request: Request, _allowed: str = allowed, **_path: str) -> HTTPResponse:
            return preflight_response(request, _allowed)

        app.add_route(options, "/" + path, methods=["OPTIONS"], name=f"options_{index}", error_format="json")

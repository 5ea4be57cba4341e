"""Liveness and readiness probes (API.md §3.1): no auth, no throttling, no business tables."""

from sanic import Blueprint, Request

from server.apidoc import describe, obj
from server.http import json_response

CHECKS = {"type": "object", "additionalProperties": {"type": "string"}}
READY_OUT = obj({"status": {"type": "string", "enum": ["ready"]}, "checks": CHECKS})

bp = Blueprint("health", url_prefix="/health")


@bp.get("/live")
@describe(
    "Liveness probe (no I/O)",
    "health",
    200,
    obj({"status": {"type": "string", "enum": ["alive"]}}),
    [],
    public=True,
    busy=False,
    description="Answers while the process runs, even with the database down or the pool exhausted.",
)
async def live(request: Request):
    # No I/O at all: answers while the database is down or the pool is exhausted.
    return json_response({"status": "alive"})


@bp.get("/ready")
@describe(
    "Readiness probe: database, migration head, not draining",
    "health",
    200,
    READY_OUT,
    [503],
    public=True,
    busy=False,
    description=(
        "200 when SELECT 1 answers within 2 s, the database's newest migration is this release's, and the "
        "process is not stopping; otherwise 503 with each check's state. Recovers by itself."
    ),
)
async def ready(request: Request):
    probe = getattr(request.app.ctx, "probe", None)
    if request.app.ctx.draining:
        checks = {"database": "not checked", "migrations": "not checked", "shutdown": "draining"}
    elif probe is None:
        checks = {"database": "not checked", "migrations": "not checked", "startup": "starting"}
    else:
        checks = await probe.check()
    failing = [f"{name}: {state}" for name, state in checks.items() if state not in ("ok", "not checked")]
    if not failing:
        return json_response({"status": "ready", "checks": checks})
    return json_response(
        {
            "status": "unavailable",
            "checks": checks,
            "error": {"code": "SERVICE_UNAVAILABLE", "message": failing[0], "details": {}},
        },
        status=503,
    )

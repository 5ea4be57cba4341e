"""/api/v1/audit-logs routes (see API.md §3)."""

from sanic import Blueprint

bp = Blueprint("audit", url_prefix="/api/v1")

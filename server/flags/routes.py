"""/api/v1/feature-flags routes (see API.md §3)."""

from sanic import Blueprint

bp = Blueprint("flags", url_prefix="/api/v1")

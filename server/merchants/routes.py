"""/api/v1/merchants routes (see API.md §3)."""

from sanic import Blueprint

bp = Blueprint("merchants", url_prefix="/api/v1")

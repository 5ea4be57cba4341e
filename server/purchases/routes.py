"""/api/v1/purchases routes (see API.md §3)."""

from sanic import Blueprint

bp = Blueprint("purchases", url_prefix="/api/v1")

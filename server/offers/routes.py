"""/api/v1/offers routes (see API.md §3)."""

from sanic import Blueprint

bp = Blueprint("offers", url_prefix="/api/v1")

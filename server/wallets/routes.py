"""/api/v1/wallets routes (see API.md §3)."""

from sanic import Blueprint

bp = Blueprint("wallets", url_prefix="/api/v1")

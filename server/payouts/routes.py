"""/api/v1/payouts routes (see API.md §3)."""

from sanic import Blueprint

bp = Blueprint("payouts", url_prefix="/api/v1")

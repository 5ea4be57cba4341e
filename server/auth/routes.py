"""/api/v1/auth: login and refresh-token rotation."""

from sanic import Blueprint, Request

from server.auth import service
from server.endpoint import Call, endpoint
from server.http import json_response
from server.validation import Field, email, string

bp = Blueprint("auth", url_prefix="/api/v1/auth")

LOGIN_BODY = {"email": Field(email), "password": Field(string(min_length=1, max_length=1024))}
REFRESH_BODY = {"refresh_token": Field(string(min_length=1, max_length=4096))}


@bp.post("/login")
@endpoint(body=LOGIN_BODY)
async def login(request: Request, call: Call):
    pair = await service.login(request.app.ctx.settings, call.body["email"], call.body["password"], request.client_ip)
    return json_response(pair.as_dict())


@bp.post("/refresh")
@endpoint(body=REFRESH_BODY)
async def refresh(request: Request, call: Call):
    pair = await service.refresh(request.app.ctx.settings, call.body["refresh_token"])
    return json_response(pair.as_dict())

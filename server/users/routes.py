"""/api/v1/users: registration and the caller's profile."""

from sanic import Blueprint, Request

from server.endpoint import Call, endpoint
from server.http import json_response
from server.users import service
from server.validation import Field, email, string

bp = Blueprint("users", url_prefix="/api/v1/users")

REGISTER_BODY = {"email": Field(email), "password": Field(string(max_length=1024))}


@bp.post("")
@endpoint(body=REGISTER_BODY)
async def register(request: Request, call: Call):
    user = await service.register(call.body["email"], call.body["password"])
    return json_response(user, status=201)


@bp.get("/me")
@endpoint(auth="user")
async def me(request: Request, call: Call):
    user = call.user
    return json_response({"id": user.id, "email": user.email, "role": user.role, "active": user.active,
                          "created_at": user.created_at})

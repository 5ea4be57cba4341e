"""/api/v1/users: registration and the caller's profile."""

from sanic import Blueprint, Request

from server.apidoc import EMAIL_IN, HASH_QUEUE_FULL, TIMESTAMP, UUID, describe, obj
from server.endpoint import Call, endpoint
from server.http import json_response
from server.users import service
from server.validation import Field, email, string

bp = Blueprint("users", url_prefix="/api/v1/users")

REGISTER_BODY = {
    "email": Field(email, doc=EMAIL_IN),
    "password": Field(string(max_length=1024), doc={"type": "string", "maxLength": 1024}),
}
USER_OUT = obj(
    {
        "id": UUID,
        "email": {"type": "string"},
        "role": {"type": "string", "enum": ["user", "admin"]},
        "active": {"type": "boolean"},
        "created_at": TIMESTAMP,
    }
)


@bp.post("")
@describe(
    "Register a user",
    "users",
    201,
    USER_OUT,
    [400, 409, 413, 415, 422],
    public=True,
    error_text={503: HASH_QUEUE_FULL},
    description="Password rules: 8+ characters, an uppercase, a lowercase, a digit and a special character.",
)
@endpoint(body=REGISTER_BODY)
async def register(request: Request, call: Call):
    user = await service.register(call.body["email"], call.body["password"])
    return json_response(user, status=201)


@bp.get("/me")
@describe(
    "The caller's profile",
    "users",
    200,
    USER_OUT,
    [401],
    description="The account the access token belongs to, as stored now (role and active state included).",
)
@endpoint(auth="user")
async def me(request: Request, call: Call):
    user = call.caller
    return json_response(
        {"id": user.id, "email": user.email, "role": user.role, "active": user.active, "created_at": user.created_at}
    )

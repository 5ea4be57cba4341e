"""/api/v1/auth: login and refresh-token rotation."""

from sanic import Blueprint, Request

from server.apidoc import EMAIL_IN, HASH_QUEUE_FULL, describe, obj
from server.auth import service
from server.endpoint import Call, endpoint
from server.http import client_address, json_response
from server.validation import Field, email, string

bp = Blueprint("auth", url_prefix="/api/v1/auth")
# Tokens in a response must never be stored by a browser or an intermediary cache (API.md §1.9).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

LOGIN_BODY = {
    "email": Field(email, doc=EMAIL_IN),
    "password": Field(string(min_length=1, max_length=1024), doc={"type": "string", "minLength": 1, "maxLength": 1024}),
}
REFRESH_BODY = {
    "refresh_token": Field(
        string(min_length=1, max_length=4096), doc={"type": "string", "minLength": 1, "maxLength": 4096}
    )
}
TOKENS_OUT = obj(
    {
        "access_token": {"type": "string"},
        "refresh_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["bearer"]},
        "expires_in": {"type": "integer"},
    }
)


@bp.post("/login")
@describe(
    "Log in",
    "auth",
    200,
    TOKENS_OUT,
    [401, 413, 415, 422, 429],
    public=True,
    description="Five failures for an email within 15 minutes block it (429 with Retry-After).",
    error_text={
        401: "INVALID_CREDENTIALS: unknown email or wrong password (the same answer for both); "
        "USER_INACTIVE: the account is deactivated.",
        429: "TOO_MANY_ATTEMPTS: too many failed logins for this email; see Retry-After.",
        503: HASH_QUEUE_FULL,
    },
)
@endpoint(body=LOGIN_BODY)
async def login(request: Request, call: Call):
    pair = await service.login(
        request.app.ctx.settings, call.body["email"], call.body["password"], client_address(request)
    )
    return json_response(pair.as_dict(), headers=NO_STORE)


@bp.post("/refresh")
@describe(
    "Rotate a refresh token",
    "auth",
    200,
    TOKENS_OUT,
    [401, 413, 415, 422],
    public=True,
    description="Each refresh token works once; reusing one revokes every refresh token of the user.",
    error_text={
        401: "INVALID_REFRESH_TOKEN: bad signature, expired or unknown; TOKEN_REVOKED: already used or revoked "
        "(every refresh token of the user is revoked); USER_INACTIVE: the account is deactivated."
    },
)
@endpoint(body=REFRESH_BODY)
async def refresh(request: Request, call: Call):
    pair = await service.refresh(request.app.ctx.settings, call.body["refresh_token"])
    return json_response(pair.as_dict(), headers=NO_STORE)

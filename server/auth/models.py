"""Refresh tokens (stored as SHA-256 digests) and failed login attempts."""

from tortoise import fields
from tortoise.models import Model


class RefreshToken(Model):
    id = fields.UUIDField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="refresh_tokens", on_delete=fields.CASCADE)
    token_hash = fields.CharField(max_length=64, unique=True)
    issued_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"


class LoginAttempt(Model):
    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=254)
    attempted_at = fields.DatetimeField(auto_now_add=True)
    ip = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "login_attempts"

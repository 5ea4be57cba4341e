"""Refresh tokens (stored as SHA-256 digests) and failed login attempts."""

from tortoise import fields
from tortoise.models import Model

from server.fields import FixedCharField, InetField
from server.users.models import NEW_UUID, NOW, User


class RefreshToken(Model):
    id = fields.UUIDField(primary_key=True, db_default=NEW_UUID)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    token_hash = FixedCharField(max_length=64, unique=True)  # hex SHA-256
    issued_at = fields.DatetimeField(db_default=NOW)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"


class LoginAttempt(Model):
    id = fields.BigIntField(primary_key=True)  # GENERATED ALWAYS AS IDENTITY
    email = fields.CharField(max_length=254)
    attempted_at = fields.DatetimeField(db_default=NOW)
    ip = InetField(null=True)

    class Meta:
        table = "login_attempts"

"""Feature flags: one row per (key, scope_type, scope_id)."""

from tortoise import fields
from tortoise.models import Model

from server.users.models import NEW_UUID, NOW


class FeatureFlag(Model):
    id = fields.UUIDField(primary_key=True, db_default=NEW_UUID)
    key = fields.CharField(max_length=100)
    enabled = fields.BooleanField(db_default=True)
    scope_type = fields.CharField(max_length=16, db_default="global")
    scope_id = fields.UUIDField(null=True)
    description = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField(db_default=NOW)
    updated_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "feature_flags"

"""Feature flags: one row per (key, scope_type, scope_id)."""

from tortoise import fields
from tortoise.models import Model


class FeatureFlag(Model):
    id = fields.UUIDField(primary_key=True)
    key = fields.CharField(max_length=100)
    enabled = fields.BooleanField(default=True)
    scope_type = fields.CharField(max_length=16, default="global")
    scope_id = fields.UUIDField(null=True)
    description = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "feature_flags"

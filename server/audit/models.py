"""The append-only audit log: one row per business change, written in the change's transaction."""

from tortoise import fields
from tortoise.models import Model


class AuditLog(Model):
    id = fields.UUIDField(primary_key=True)
    occurred_at = fields.DatetimeField(auto_now_add=True)
    actor_type = fields.CharField(max_length=16)
    actor_id = fields.UUIDField(null=True)
    action = fields.CharField(max_length=64)
    resource_type = fields.CharField(max_length=64)
    resource_id = fields.UUIDField()
    outcome = fields.CharField(max_length=16, default="success")
    details = fields.JSONField(default=dict)

    class Meta:
        table = "audit_logs"

"""The append-only audit log: one row per business change, written in the change's transaction."""

from typing import Any

from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model

from server.users.models import NEW_UUID, NOW


class AuditLog(Model):
    id = fields.UUIDField(primary_key=True, db_default=NEW_UUID)
    occurred_at = fields.DatetimeField(db_default=NOW)
    actor_type = fields.CharField(max_length=16)
    actor_id = fields.UUIDField(null=True)
    action = fields.CharField(max_length=64)
    resource_type = fields.CharField(max_length=64)
    resource_id = fields.UUIDField()
    outcome = fields.CharField(max_length=16, db_default="success")
    details: fields.JSONField[dict[str, Any]] = fields.JSONField(db_default=SqlDefault("'{}'::jsonb"))

    class Meta:
        table = "audit_logs"

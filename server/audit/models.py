"""The append-only audit log: one row per business change, written in the change's transaction."""

from typing import Any

from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model

from server.ids import TIME_PREFIXED_UUID, time_prefixed_uuid
from server.users.models import NOW


class AuditLog(Model):
    id = fields.UUIDField(primary_key=True, default=time_prefixed_uuid, db_default=TIME_PREFIXED_UUID)
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


class AuditDayCount(Model):
    """Per (UTC day of occurred_at, action, slot): how many audit rows there are. Written only by the
    trigger on audit_logs (migration 6); the audit list reads its totals from it. Slots spread one
    busy day's count over several rows (one per database session, pg_backend_pid() % 8), so
    concurrent writers do not queue on one row lock; the audit log is append-only, so counts only grow.

    The table's key is (day, action, slot). Tortoise models one-column keys only, so `action`
    stands as the key for the ORM: filter and sum, and never save or delete an instance."""

    day = fields.DateField()
    action = fields.CharField(max_length=64, primary_key=True)
    slot = fields.SmallIntField()
    n = fields.BigIntField(db_default=0)

    class Meta:
        table = "audit_day_counts"

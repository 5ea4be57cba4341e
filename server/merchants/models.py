"""Partner merchants."""

from tortoise import fields
from tortoise.models import Model

from server.users.models import NEW_UUID, NOW


class Merchant(Model):
    id = fields.UUIDField(primary_key=True, db_default=NEW_UUID)
    name = fields.CharField(max_length=255)  # unique case-insensitively: uq_merchants_name_ci
    default_cashback_percentage = fields.DecimalField(max_digits=5, decimal_places=2)
    active = fields.BooleanField(db_default=True)
    created_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "merchants"

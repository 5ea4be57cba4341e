"""Partner merchants."""

from tortoise import fields
from tortoise.models import Model


class Merchant(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=255)
    default_cashback_percentage = fields.DecimalField(max_digits=5, decimal_places=2)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "merchants"

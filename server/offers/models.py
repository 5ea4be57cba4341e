"""Cashback offers: a percentage or a fixed amount, valid between two dates, one active per merchant."""

from tortoise import fields
from tortoise.models import Model


class Offer(Model):
    id = fields.UUIDField(primary_key=True)
    merchant = fields.ForeignKeyField("models.Merchant", related_name="offers", on_delete=fields.RESTRICT)
    percentage = fields.DecimalField(max_digits=5, decimal_places=2, default=0)
    fixed_amount = fields.DecimalField(max_digits=19, decimal_places=2, null=True)
    start_date = fields.DateField()
    end_date = fields.DateField()
    monthly_cap_per_user = fields.DecimalField(max_digits=19, decimal_places=2)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "offers"

"""Withdrawals of available cashback: requested, then completed or failed by an admin."""

from tortoise import fields
from tortoise.models import Model


class Payout(Model):
    id = fields.UUIDField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="payouts", on_delete=fields.RESTRICT)
    amount = fields.DecimalField(max_digits=19, decimal_places=2)
    status = fields.CharField(max_length=16, default="requested")
    requested_at = fields.DatetimeField(auto_now_add=True)
    processed_at = fields.DatetimeField(null=True)
    processed_by = fields.ForeignKeyField(
        "models.User", related_name="processed_payouts", on_delete=fields.RESTRICT, null=True
    )
    external_reference = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "payouts"

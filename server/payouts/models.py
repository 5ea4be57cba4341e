"""Withdrawals of available cashback: requested, then completed or failed by an admin."""

from tortoise import fields
from tortoise.models import Model

from server.users.models import NEW_UUID, NOW, User


class Payout(Model):
    id = fields.UUIDField(primary_key=True, db_default=NEW_UUID)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="payouts", on_delete=fields.RESTRICT
    )
    amount = fields.DecimalField(max_digits=19, decimal_places=2)
    status = fields.CharField(max_length=16, db_default="requested")
    requested_at = fields.DatetimeField(db_default=NOW)
    processed_at = fields.DatetimeField(null=True)
    # The column is `processed_by`, not Tortoise's default `processed_by_id`.
    processed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User",
        related_name="processed_payouts",
        on_delete=fields.RESTRICT,
        null=True,
        source_field="processed_by",
    )
    external_reference = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "payouts"

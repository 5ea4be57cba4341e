"""Cashback offers: a percentage or a fixed amount, valid between two dates, one active per merchant."""

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

from server.merchants.models import Merchant
from server.users.models import NEW_UUID, NOW


class Offer(Model):
    id = fields.UUIDField(primary_key=True, db_default=NEW_UUID)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="offers", on_delete=fields.RESTRICT
    )
    if TYPE_CHECKING:  # the key column Tortoise adds for the relation above
        merchant_id: UUID
    percentage = fields.DecimalField(max_digits=5, decimal_places=2, db_default=0)
    fixed_amount = fields.DecimalField(max_digits=19, decimal_places=2, null=True)
    start_date = fields.DateField()
    end_date = fields.DateField()
    monthly_cap_per_user = fields.DecimalField(max_digits=19, decimal_places=2)
    active = fields.BooleanField(db_default=True)
    created_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "offers"

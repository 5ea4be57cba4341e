"""Purchases recorded by users, the one cashback transaction each purchase credits, and the
monthly cashback totals the cap reads."""

from typing import TYPE_CHECKING
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

from server.fields import FixedCharField
from server.ids import TIME_PREFIXED_UUID, time_prefixed_uuid
from server.merchants.models import Merchant
from server.offers.models import Offer
from server.users.models import NOW, User


class Purchase(Model):
    id = fields.UUIDField(primary_key=True, default=time_prefixed_uuid, db_default=TIME_PREFIXED_UUID)
    external_id = fields.CharField(max_length=255, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="purchases", on_delete=fields.RESTRICT
    )
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="purchases", on_delete=fields.RESTRICT
    )
    offer: fields.ForeignKeyRelation[Offer] = fields.ForeignKeyField(
        "models.Offer", related_name="purchases", on_delete=fields.RESTRICT
    )
    if TYPE_CHECKING:  # the key columns Tortoise adds for the relations above
        user_id: UUID
        merchant_id: UUID
        offer_id: UUID
    amount = fields.DecimalField(max_digits=19, decimal_places=2)
    currency = FixedCharField(max_length=3)
    status = fields.CharField(max_length=16, db_default="pending")
    cashback_amount = fields.DecimalField(max_digits=19, decimal_places=2, db_default=0)
    verification_attempts = fields.IntField(db_default=0)
    next_verification_at = fields.DatetimeField(db_default=NOW)
    created_at = fields.DatetimeField(db_default=NOW)
    updated_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "purchases"


class CashbackTransaction(Model):
    id = fields.UUIDField(primary_key=True, default=time_prefixed_uuid, db_default=TIME_PREFIXED_UUID)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="cashback_transactions", on_delete=fields.RESTRICT
    )
    purchase: fields.OneToOneRelation[Purchase] = fields.OneToOneField(
        "models.Purchase", related_name="cashback_transaction", on_delete=fields.RESTRICT
    )
    amount = fields.DecimalField(max_digits=19, decimal_places=2)
    status = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(db_default=NOW)
    updated_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "cashback_transactions"


class CashbackMonthlyTotal(Model):
    """Per (user, offer, first day of the UTC month): the cashback of the purchases that count
    toward the cap. Written only by the trigger on purchases (server/purchases/sql/); read it.

    The table's key is (user_id, offer_id, month). Tortoise models one-column keys only, so `month`
    stands as the key for the ORM: filter by all three, and never save or delete an instance."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="cashback_monthly_totals", on_delete=fields.CASCADE
    )
    offer: fields.ForeignKeyRelation[Offer] = fields.ForeignKeyField(
        "models.Offer", related_name="cashback_monthly_totals", on_delete=fields.CASCADE
    )
    month = fields.DateField(primary_key=True)
    earned = fields.DecimalField(max_digits=19, decimal_places=2, db_default=0)

    class Meta:
        table = "cashback_monthly_totals"


class PurchaseMonthCount(Model):
    """Per (user, first day of the UTC month of created_at, status): how many purchases there are.
    Written only by the triggers on purchases (server/purchases/sql/purchase_counts_triggers.sql),
    so every writer keeps it exact; the lists read their totals and deep-page boundaries from it.

    The table's key is (user_id, month, status). Tortoise models one-column keys only, so `status`
    stands as the key for the ORM: filter by the user, and never save or delete an instance."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="purchase_month_counts", on_delete=fields.CASCADE
    )
    if TYPE_CHECKING:
        user_id: UUID
    month = fields.DateField()
    status = fields.CharField(max_length=16, primary_key=True)
    n = fields.BigIntField(db_default=0)

    class Meta:
        table = "purchase_month_counts"


class PurchaseDayCount(Model):
    """Per (UTC day of created_at, status, slot): purchases counted in that slot. Written only by the
    triggers on purchases (server/purchases/sql/purchase_day_counts.sql): only the sum over a day's
    slots means anything, and one slot may be negative. The admin purchase list sums it.

    The table's key is (day, status, slot). Tortoise models one-column keys only, so `status` stands
    as the key for the ORM: filter and sum, and never save or delete an instance."""

    day = fields.DateField()
    status = fields.CharField(max_length=16, primary_key=True)
    slot = fields.SmallIntField()
    n = fields.BigIntField(db_default=0)

    class Meta:
        table = "purchase_day_counts"

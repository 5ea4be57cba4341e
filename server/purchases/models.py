"""Purchases recorded by users, and the one cashback transaction each purchase credits."""

from tortoise import fields
from tortoise.models import Model


class Purchase(Model):
    id = fields.UUIDField(primary_key=True)
    external_id = fields.CharField(max_length=255, unique=True)
    user = fields.ForeignKeyField("models.User", related_name="purchases", on_delete=fields.RESTRICT)
    merchant = fields.ForeignKeyField("models.Merchant", related_name="purchases", on_delete=fields.RESTRICT)
    offer = fields.ForeignKeyField("models.Offer", related_name="purchases", on_delete=fields.RESTRICT)
    amount = fields.DecimalField(max_digits=19, decimal_places=2)
    currency = fields.CharField(max_length=3)
    status = fields.CharField(max_length=16, default="pending")
    cashback_amount = fields.DecimalField(max_digits=19, decimal_places=2, default=0)
    verification_attempts = fields.IntField(default=0)
    next_verification_at = fields.DatetimeField(auto_now_add=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "purchases"


class CashbackTransaction(Model):
    id = fields.UUIDField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="cashback_transactions", on_delete=fields.RESTRICT)
    purchase = fields.OneToOneField("models.Purchase", related_name="cashback_transaction", on_delete=fields.RESTRICT)
    amount = fields.DecimalField(max_digits=19, decimal_places=2)
    status = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "cashback_transactions"

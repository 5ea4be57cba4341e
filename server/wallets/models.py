"""One wallet per user: three stored balances; `reserved` is derived from open payouts."""

from tortoise import fields
from tortoise.models import Model

from server.users.models import NOW, User


class Wallet(Model):
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "models.User", related_name="wallet", on_delete=fields.CASCADE, primary_key=True
    )
    pending_balance = fields.DecimalField(max_digits=19, decimal_places=2, db_default=0)
    available_balance = fields.DecimalField(max_digits=19, decimal_places=2, db_default=0)
    paid_balance = fields.DecimalField(max_digits=19, decimal_places=2, db_default=0)
    updated_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "wallets"

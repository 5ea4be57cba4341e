"""Accounts. The schema itself is made by the migrations; these models map it for the ORM."""

from tortoise import fields
from tortoise.models import Model


class User(Model):
    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    hashed_password = fields.TextField()
    role = fields.CharField(max_length=16, default="user")
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"

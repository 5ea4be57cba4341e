"""Accounts. The schema itself is made by the migrations; these models say exactly what they made
(tests/integration/platform/test_models_match_schema.py compares the two)."""

from tortoise import fields
from tortoise.fields.db_defaults import SqlDefault
from tortoise.models import Model

NOW = SqlDefault("now()")
NEW_UUID = SqlDefault("gen_random_uuid()")


class User(Model):
    id = fields.UUIDField(primary_key=True, db_default=NEW_UUID)
    email = fields.CharField(max_length=254, unique=True)
    hashed_password = fields.TextField()
    role = fields.CharField(max_length=16, db_default="user")
    active = fields.BooleanField(db_default=True)
    created_at = fields.DatetimeField(db_default=NOW)

    class Meta:
        table = "users"

"""Tortoise field types for the two PostgreSQL column types Tortoise has none for, so that each
model says exactly what its migration made: fixed-length `char(n)` and `inet`."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface
from typing import Any

from tortoise import fields
from tortoise.models import Model


class FixedCharField(fields.CharField):
    """`char(n)`: blank-padded to n; used where every value has exactly n characters."""

    @property
    def SQL_TYPE(self) -> str:  # type: ignore[override]  # noqa: N802 - Tortoise's name
        return f"CHAR({self.max_length})"


class InetField(fields.Field[str]):
    """`inet`: an IPv4 or IPv6 address. Read back as its text form; asyncpg sends str as inet."""

    SQL_TYPE = "INET"
    field_type = str

    def to_python_value(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return str(value.ip if hasattr(value, "ip") else value)

    def to_db_value(self, value: Any, instance: type[Model] | Model) -> str | None:
        if value is None:
            return None
        text = str(value)
        (ip_interface if "/" in text else ip_address)(text)  # a bad address is a ValueError here
        return text

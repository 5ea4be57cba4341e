"""Request schemas: small field parsers that collect every violation at once (API.md §1.5, §1.6).

A schema is a dict of field name -> Field. `validate()` returns the parsed values and appends a
`{"field", "reason"}` violation for each field that does not fit; the caller raises them together.
Money and rates are parsed as Decimal from the JSON text itself, never through a binary float.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from server.errors import ApiError, schema_error, violation

MISSING = object()
MONEY_MAX = Decimal("99999999999999999.99")  # NUMERIC(19,2)
CENT = Decimal("0.01")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


class FieldError(ValueError):
    """Raised by a parser with the violation's reason."""


class _NonFinite:
    """What `NaN`/`Infinity` literals parse to: a value no number field accepts."""

    def __init__(self, text: str) -> None:
        self.text = text


# One decoder for every body: json.loads(..., parse_float=...) builds a new one per call (4 us of 8).
_BODY_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_NonFinite)


def parse_json(raw: bytes) -> Any:
    """Parse a request body; numbers with a fraction or exponent become Decimal."""
    return _BODY_DECODER.decode(raw.decode("utf-8"))


@dataclass(frozen=True)
class Field:
    parse: Callable[[Any], Any]
    required: bool = True
    default: Any = None
    nullable: bool = False


def validate(schema: Mapping[str, Field], data: Mapping[str, Any], violations: list[dict]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in schema.items():
        raw = data.get(name, MISSING)
        if raw is MISSING or (raw is None and spec.nullable):
            if raw is MISSING and spec.required:
                violations.append(violation(name, "Field required."))
            else:
                values[name] = None if raw is None else spec.default
            continue
        if raw is None:
            violations.append(violation(name, "Field may not be null."))
            continue
        try:
            values[name] = spec.parse(raw)
        except FieldError as error:
            violations.append(violation(name, str(error)))
    return values


def query_values(args: Mapping[str, list[str]]) -> dict[str, str]:
    """First value of each query parameter."""
    return {key: values[0] for key, values in args.items() if values}


# -- parsers ---------------------------------------------------------------------------------
def string(min_length: int = 0, max_length: int | None = None, strip: bool = False) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str):
            raise FieldError("Must be a string.")
        value = raw.strip() if strip else raw
        if len(value) < min_length:
            raise FieldError("Must not be empty." if min_length == 1 else f"Must be at least {min_length} characters long.")
        if max_length is not None and len(value) > max_length:
            raise FieldError(f"Must be at most {max_length} characters long.")
        return value

    return parse


def email(raw: Any) -> str:
    if not isinstance(raw, str):
        raise FieldError("Must be a string.")
    value = raw.strip().lower()
    if len(value) > 254:
        raise FieldError("Email must be at most 254 characters long.")
    if not EMAIL_RE.match(value):
        raise FieldError("Must be a valid email address.")
    return value


def _decimal(raw: Any, label: str) -> Decimal:
    if isinstance(raw, bool) or isinstance(raw, _NonFinite):
        raise FieldError(f"{label} must be a number.")
    if isinstance(raw, (int, Decimal)):
        value = Decimal(raw)
    elif isinstance(raw, str):
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise FieldError(f"{label} must be a number.") from None
    else:
        raise FieldError(f"{label} must be a number.")
    if not value.is_finite():
        raise FieldError(f"{label} must be a finite number.")
    if abs(value) > MONEY_MAX:
        raise FieldError(f"{label} is too large.")
    if value != value.quantize(CENT):
        raise FieldError(f"{label} must have at most 2 decimal places")
    return value.quantize(CENT)


def money(label: str = "Amount", positive: bool = True) -> Callable[[Any], Decimal]:
    """A money amount: string or number, at most 2 decimals, finite, within NUMERIC(19,2)."""

    def parse(raw: Any) -> Decimal:
        value = _decimal(raw, label)
        if value > MONEY_MAX:
            raise FieldError(f"{label} is too large.")
        if positive and value <= 0:
            raise FieldError(f"{label} must be greater than 0.")
        return value

    return parse


def rate(label: str = "Value", maximum: Decimal = MONEY_MAX) -> Callable[[Any], Decimal]:
    """A rate or cap: number or numeric string, at most 2 decimals (range rules are business rules)."""

    def parse(raw: Any) -> Decimal:
        value = _decimal(raw, label)
        if abs(value) > maximum:
            raise FieldError(f"{label} is too large.")
        return value

    return parse


def uuid_value(raw: Any) -> str:
    if not isinstance(raw, str):
        raise FieldError("Must be a UUID string.")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise FieldError("Must be a valid UUID.") from None


def path_uuid(raw: str) -> str | None:
    """A UUID from the path, or None (the caller answers 404 for that resource type)."""
    try:
        return str(uuid.UUID(raw))
    except (ValueError, AttributeError, TypeError):
        return None


def date_value(raw: Any) -> date:
    if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise FieldError("Must be a date in YYYY-MM-DD format.")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FieldError("Must be a valid calendar date.") from None


def timestamp_value(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise FieldError("Must be an ISO-8601 timestamp with an offset.")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise FieldError("Must be an ISO-8601 timestamp with an offset.") from None
    if value.tzinfo is None:
        raise FieldError("Timestamp must include a UTC offset.")
    return value


def body_bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise FieldError("Must be a boolean.")
    return raw


def query_bool(raw: Any) -> bool:
    lowered = str(raw).strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise FieldError("Must be a boolean (true/false/1/0/yes/no/on/off).")


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str) or raw not in allowed:
            raise FieldError(f"Must be one of: {', '.join(allowed)}.")
        return raw

    return parse


def query_int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        text = str(raw).strip()
        if not re.fullmatch(r"[+-]?\d{1,18}", text):
            raise FieldError("Must be an integer.")
        value = int(text)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise FieldError(f"Must be {bound}.")
        return value

    return parse


def pagination_schema(default_limit: int, max_limit: int = 100) -> dict[str, Field]:
    return {
        "offset": Field(query_int(0), required=False, default=0),
        "limit": Field(query_int(1, max_limit), required=False, default=default_limit),
    }


def require_object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise schema_error([violation("body", "Request body must be a JSON object.")])
    return data


def raise_if(violations: list[dict]) -> None:
    if violations:
        raise schema_error(violations)


__all__ = [
    "ApiError", "Field", "FieldError", "MISSING", "body_bool", "choice", "date_value", "email",
    "money", "parse_json", "path_uuid", "query_bool", "query_int", "query_values", "rate",
    "require_object", "string", "timestamp_value", "uuid_value", "validate", "pagination_schema",
]

"""Request schemas: small field parsers that collect every violation at once (API.md §1.5, §1.6).

A schema is a dict of field name -> Field. `validate()` returns the parsed values and appends a
`{"field", "reason"}` violation for each field that does not fit; the caller raises them together.
Money and rates are parsed as Decimal from the JSON text itself, never through a binary float.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from server.errors import ApiError, schema_error, violation

MISSING = object()
MONEY_MAX = Decimal("99999999999999999.99")  # NUMERIC(19,2)
CENT = Decimal("0.01")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


class FieldError(ValueError):
    """Raised by a parser with the violation's reason."""


class _NonFinite:
    """What `NaN`/`Infinity` literals parse to: a value no number field accepts."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | Decimal:
    # Python refuses to convert an integer of more than 4,300 digits (a ValueError naming
    # sys.set_int_max_str_digits); as a Decimal it is a number that every field refuses as too large.
    return int(text) if len(text) <= 18 else Decimal(text)


def _parse_float(text: str) -> Decimal:
    # An exponent past what Decimal can hold (1e9999999999999999999) raises InvalidOperation, which
    # is no ValueError: as a ValueError it is the client's malformed body (400), not our 500.
    try:
        return Decimal(text)
    except ArithmeticError:
        raise ValueError(f"number out of range: {text[:40]}") from None


# One decoder for every body: json.loads(..., parse_float=...) builds a new one per call, which
# costs about as much as the decoding itself.
_BODY_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_int=_parse_int, parse_constant=_NonFinite)

# PostgreSQL's text cannot hold NUL, and UTF-8 cannot encode an unpaired surrogate; JSON can carry
# both as \u escapes (\u0000, \ud800), so such strings are refused before they reach a query.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_REASON = "Must not contain NUL characters or unpaired surrogates."


def parse_json(raw: bytes) -> Any:
    """Parse a request body; numbers with a fraction or exponent become Decimal."""
    return _BODY_DECODER.decode(raw.decode("utf-8"))


def _holds_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_unstorable(key) or _holds_unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_unstorable(item) for item in value)
    return False


def unstorable_fields(raw: bytes, data: Mapping[str, Any]) -> list[dict[str, str]]:
    """A violation for each top-level field whose value holds a string PostgreSQL cannot store.

    Both can only come from a \\u escape (a literal NUL byte is not valid JSON, and the body is
    valid UTF-8), so bodies without one, nearly all of them, are not walked."""
    if b"\\u" not in raw:
        return []
    found = [
        violation(key, UNSTORABLE_REASON)
        for key, value in data.items()
        if not _holds_unstorable(key) and _holds_unstorable(value)
    ]
    if any(_holds_unstorable(key) for key in data):
        found.append(violation("body", "Field names " + UNSTORABLE_REASON[0].lower() + UNSTORABLE_REASON[1:]))
    return found


@dataclass(frozen=True)
class Field:
    parse: Callable[[Any], Any]
    required: bool = True
    default: Any = None
    nullable: bool = False
    # The field's JSON schema in the OpenAPI document: a body declared with it is documented from
    # the same declaration that validates it (server/apidoc.py, body_of).
    doc: Mapping[str, Any] | None = None


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
    """First value of each query parameter; a value with a NUL (`%00`) is refused here, for every
    route at once, as no filter column can hold it."""
    values = {key: values[0] for key, values in args.items() if values}
    refused = [violation(key, UNSTORABLE_REASON) for key, value in values.items() if _UNSTORABLE.search(value)]
    if refused:
        raise schema_error(refused)
    return values


# -- parsers ---------------------------------------------------------------------------------
def string(min_length: int = 0, max_length: int | None = None, strip: bool = False) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if not isinstance(raw, str):
            raise FieldError("Must be a string.")
        value = raw.strip() if strip else raw
        if len(value) < min_length:
            raise FieldError(
                "Must not be empty." if min_length == 1 else f"Must be at least {min_length} characters long."
            )
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
        # Decimal() also reads "1_000" and non-ASCII digits ("١٠٠"); a client that sends those
        # has a bug we should not guess around, so only plain ASCII decimal notation is a number.
        text = raw.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            raise FieldError(f"{label} must be a number.")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise FieldError(f"{label} must be a number.") from None
    else:
        raise FieldError(f"{label} must be a number.")
    if not value.is_finite():
        raise FieldError(f"{label} must be a finite number.")
    # copy_abs(), not abs(): abs() rounds in the context, which overflows past an exponent of 10^6.
    if value.copy_abs() > MONEY_MAX:
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
        if value.copy_abs() > maximum:
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
    try:  # 9999-12-31T23:59:59-05:00 is a valid ISO timestamp past the last UTC instant Python has
        value.astimezone(UTC)
    except OverflowError:
        raise FieldError("Timestamp is out of range.") from None
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


# The largest `offset` PostgreSQL's OFFSET takes (bigint); an integer above it is out of range, not
# "not an integer" (API.md §1.5).
BIGINT_MAX = 9_223_372_036_854_775_807


def query_int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    ceiling = BIGINT_MAX if maximum is None else maximum

    def parse(raw: Any) -> int:
        text = str(raw).strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):  # ASCII digits only: int() would read any script's
            raise FieldError("Must be an integer.")
        if len(text.lstrip("+-").lstrip("0")) > 19:  # past any bound here: no need to convert it
            value = minimum - 1 if text.startswith("-") else ceiling + 1
        else:
            value = int(text)
        if maximum is not None and not minimum <= value <= maximum:
            raise FieldError(f"Must be between {minimum} and {maximum}.")
        if value < minimum:
            raise FieldError(f"Must be at least {minimum}.")
        if value > ceiling:
            raise FieldError(f"Must be at most {ceiling}.")
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
    "ApiError",
    "Field",
    "FieldError",
    "MISSING",
    "body_bool",
    "choice",
    "date_value",
    "email",
    "money",
    "parse_json",
    "path_uuid",
    "query_bool",
    "query_int",
    "query_values",
    "rate",
    "require_object",
    "string",
    "timestamp_value",
    "unstorable_fields",
    "uuid_value",
    "validate",
    "pagination_schema",
]

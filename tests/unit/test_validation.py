from datetime import date
from decimal import Decimal

import pytest

from server.validation import (
    Field,
    FieldError,
    body_bool,
    date_value,
    email,
    money,
    parse_json,
    path_uuid,
    query_bool,
    query_int,
    rate,
    timestamp_value,
    unstorable_fields,
    uuid_value,
    validate,
)


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"amount": 10}', Decimal("10.00")),
        (b'{"amount": "10.5"}', Decimal("10.50")),
        (b'{"amount": 1E+2}', Decimal("100.00")),
        (b'{"amount": 0.1}', Decimal("0.10")),
        (b'{"amount": "75.00"}', Decimal("75.00")),
    ],
)
def test_money_is_parsed_as_decimal_from_the_json_text(body, expected):
    value = money()(parse_json(body)["amount"])
    assert value == expected and isinstance(value, Decimal)


@pytest.mark.parametrize(
    "body",
    [
        b'{"amount": 1.005}',
        b'{"amount": "abc"}',
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": "NaN"}',
        b'{"amount": true}',
        b'{"amount": "-Infinity"}',
        b'{"amount": [1]}',
        b'{"amount": 0}',
        b'{"amount": -5}',
        b'{"amount": 1e30}',
        # Decimal() reads these, a client sending them has a bug: only ASCII decimal notation counts.
        b'{"amount": "1_000"}',
        '{"amount": "\u0661\u0660\u0660"}'.encode(),
        b'{"amount": "10 0"}',
        b'{"amount": "0x10"}',
        b'{"amount": ""}',
        b'{"amount": ' + b"9" * 5000 + b"}",  # over Python's 4,300-digit int limit: a number, too large
    ],
)
def test_money_rejects_what_the_contract_rejects(body):
    with pytest.raises(FieldError):
        money()(parse_json(body)["amount"])


def test_two_decimal_reason_text():
    with pytest.raises(FieldError, match="Amount must have at most 2 decimal places"):
        money()(Decimal("1.005"))


def test_rate_keeps_two_decimals_and_allows_zero():
    assert rate()(Decimal("5.5")) == Decimal("5.50")
    assert rate()(0) == Decimal("0.00")
    with pytest.raises(FieldError):
        rate()(Decimal("1.234"))


def test_validate_collects_every_violation():
    violations: list = []
    schema = {"email": Field(email), "when": Field(date_value), "flag": Field(body_bool, required=False, default=True)}
    values = validate(schema, {"email": "nope", "when": "2026-02-30"}, violations)
    assert {v["field"] for v in violations} == {"email", "when"}
    assert values["flag"] is True


@pytest.mark.parametrize("raw, expected", [("true", True), ("ON", True), ("1", True), ("No", False), ("off", False)])
def test_query_booleans(raw, expected):
    assert query_bool(raw) is expected


def test_query_boolean_rejects_other_words():
    with pytest.raises(FieldError):
        query_bool("maybe")


def test_query_int_bounds():
    assert query_int(1, 100)("20") == 20
    for bad in ("0", "101", "1.5", "abc", "", "\u0661\u0662", "1_0"):
        with pytest.raises(FieldError):
            query_int(1, 100)(bad)


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("-1", "Must be at least 0."),
        ("9223372036854775808", "Must be at most 9223372036854775807."),
        ("1" + "0" * 30, "Must be at most 9223372036854775807."),
        ("-" + "9" * 5000, "Must be at least 0."),
        ("1e3", "Must be an integer."),
    ],
)
def test_an_offset_beyond_postgresql_bigint_is_out_of_range_not_a_non_integer(raw, reason):
    assert query_int(0)("9223372036854775807") == 9223372036854775807
    assert query_int(0)("000000000000000000000042") == 42
    with pytest.raises(FieldError) as refused:
        query_int(0)(raw)
    assert str(refused.value) == reason


def test_timestamps_need_an_offset():
    assert timestamp_value("2026-03-04T10:15:30+00:00").utcoffset().total_seconds() == 0
    assert timestamp_value("2026-03-04T10:15:30Z").tzinfo is not None
    with pytest.raises(FieldError):
        timestamp_value("2026-03-04T10:15:30")


def test_uuids_and_dates():
    assert uuid_value("B7E2C1A2-4F3A-4E2B-9C1A-8D2E3F4B5C6D") == "b7e2c1a2-4f3a-4e2b-9c1a-8d2e3f4b5c6d"
    assert path_uuid("not-a-uuid") is None
    assert date_value("2026-11-27") == date(2026, 11, 27)
    with pytest.raises(FieldError):
        uuid_value("123")
    with pytest.raises(FieldError):
        date_value("27/11/2026")


def test_email_is_trimmed_and_lowercased():
    assert email("  Alice@Example.COM ") == "alice@example.com"
    with pytest.raises(FieldError):
        email("a" * 250 + "@x.com")


@pytest.mark.parametrize("text", ["+100", "100.", ".5", " 12.50 ", "1E+2"])
def test_money_strings_in_plain_decimal_notation_are_accepted(text):
    assert money()(text) > 0


@pytest.mark.parametrize(
    "raw, fields",
    [
        (rb'{"name": "a\u0000b", "ok": "x"}', ["name"]),
        (rb'{"name": "sur\ud800", "n": 1}', ["name"]),
        (rb'{"tags": ["x", {"deep": "\udfff"}]}', ["tags"]),
        (rb'{"n\u0000": "x"}', ["body"]),
        (rb'{"emoji": "\ud83d\ude00", "name": "caf\u00e9"}', []),  # a surrogate pair is one character
        (b'{"name": "plain"}', []),
    ],
)
def test_strings_postgresql_cannot_store_are_found(raw, fields):
    assert [v["field"] for v in unstorable_fields(raw, parse_json(raw))] == fields


def test_timestamps_past_the_last_utc_instant_are_refused():
    with pytest.raises(FieldError, match="out of range"):
        timestamp_value("9999-12-31T23:59:59-05:00")
    with pytest.raises(FieldError, match="out of range"):
        timestamp_value("0001-01-01T00:00:00+05:00")

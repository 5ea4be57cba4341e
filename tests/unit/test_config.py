from decimal import Decimal

import pytest

from server.config import ConfigError, database_address, load_settings, read_env_file

GOOD = {"DATABASE_URL": "postgres://app:secret@127.0.0.1:5432/cnb", "OAUTH_HASH_KEY": "k" * 32, "ENV_FILE": "/dev/null"}


def test_defaults_follow_the_contract():
    settings = load_settings(GOOD)
    assert settings.access_token_ttl_minutes == 15
    assert settings.refresh_token_ttl_minutes == 43200
    assert settings.max_cashback_percentage == Decimal("20")
    assert settings.payout_minimum_amount == Decimal("10.00")
    assert settings.login_max_failures == 5 and settings.login_window_minutes == 15
    assert settings.purchase_confirmation_interval_seconds == 60
    assert settings.cors_allowed_origins == ("https://clicknback.com",)
    assert settings.rejection_merchant_id == ""
    assert settings.slow_query_ms == 1000


@pytest.mark.parametrize(
    "url, address",
    [
        ("postgres://app:secret@127.0.0.1:5432/cnb", ("127.0.0.1", 5432)),
        ("postgresql://app@db.internal/cnb", ("db.internal", 5432)),
        ("postgres://app:secret@/cnb?host=/var/run/postgresql", ("/var/run/postgresql", 5432)),
        ("postgres://app@:5433/cnb?host=/tmp/pg&sslmode=disable", ("/tmp/pg", 5433)),
    ],
)
def test_database_url_by_tcp_or_by_unix_socket(url, address):
    assert load_settings({**GOOD, "DATABASE_URL": url}).database_url == url
    assert database_address(url) == address


@pytest.mark.parametrize(
    "changes, variable",
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://app:secret@/cnb"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://app:secret@/cnb?host=run/postgresql"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://app:secret@db:port/cnb"}, "DATABASE_URL"),
        ({"OAUTH_HASH_KEY": "short"}, "OAUTH_HASH_KEY"),
        ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"),
        ({"PURCHASE_JOB_ENABLED": "maybe"}, "PURCHASE_JOB_ENABLED"),
        ({"REJECTION_MERCHANT_ID": "not-a-uuid"}, "REJECTION_MERCHANT_ID"),
        ({"PAYOUT_MINIMUM_AMOUNT": "NaN"}, "PAYOUT_MINIMUM_AMOUNT"),
        ({"CORS_ALLOWED_ORIGINS": "[1, 2]"}, "CORS_ALLOWED_ORIGINS"),
        ({"DEFAULT_PAGE_SIZE": "500"}, "DEFAULT_PAGE_SIZE"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_variable(changes, variable):
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, **changes})
    assert caught.value.variable == variable
    assert "secret" not in str(caught.value)


def test_env_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nexport DATABASE_URL='postgres://a@127.0.0.1/x'\nOAUTH_HASH_KEY=\""
        + "z" * 40
        + '"\nSLOW_QUERY_MS=250\n'
    )
    assert read_env_file(env_file)["SLOW_QUERY_MS"] == "250"
    settings = load_settings({"ENV_FILE": str(env_file), "SLOW_QUERY_MS": "500"})
    assert settings.database_url == "postgres://a@127.0.0.1/x"
    assert settings.slow_query_ms == 500


def test_missing_env_file_named_by_env_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "ENV_FILE": str(tmp_path / "absent")})
    assert caught.value.variable == "ENV_FILE"


# A generated password with an unencoded / (or # ?) ends urllib's netloc early, and urllib's
# ValueError quotes what it took for the port: the password's first characters.
UNENCODED_PASSWORD_URL = "postgres://app:Ab3x/9kQ+zz@127.0.0.1:5432/cnb"


def test_a_password_urllib_reads_as_a_port_is_never_quoted():
    with pytest.raises(ConfigError) as caught:
        database_address(UNENCODED_PASSWORD_URL)
    assert caught.value.variable == "DATABASE_URL" and "Ab3x" not in str(caught.value)
    assert "percent-encode" in str(caught.value)


def test_an_env_file_that_is_not_utf8_is_one_line_naming_its_line_not_its_text(tmp_path):
    env_file = tmp_path / "latin1.env"
    env_file.write_bytes(b"OAUTH_HASH_KEY=" + b"k" * 32 + b"\nDATABASE_URL=postgres://app:p\xe9ss-93@127.0.0.1/cnb\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"ENV_FILE": str(env_file)})
    assert str(caught.value) == f"configuration error: ENV_FILE: {env_file}:2 is not UTF-8 text"


def test_an_env_file_that_cannot_be_read_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_env_file(tmp_path)  # a folder: read_bytes raises IsADirectoryError
    assert caught.value.variable == "ENV_FILE" and str(tmp_path) in str(caught.value)

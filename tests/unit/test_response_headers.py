"""server.http.Response sanitises header names and values exactly as Sanic does, only cheaper."""

import pytest
from sanic.response import HTTPResponse

from server.http import Response, json_response


@pytest.mark.parametrize(
    "value",
    [
        "application/json; charset=utf-8",
        "3f2c-ok",
        "",
        "a\r\nSet-Cookie: x=1",
        "nul\x00byte",
        "\n",
        "tail\r",
    ],
)
def test_sanitising_matches_sanics(value):
    assert Response._sanitize_header_value(value) == HTTPResponse._sanitize_header_value(value)


def test_a_header_cannot_smuggle_a_line_break_into_the_response():
    response = json_response({"ok": True}, headers={"X-Request-ID": "abc\r\nSet-Cookie: stolen=1"})
    assert dict(response.processed_headers)[b"X-Request-ID"] == b"abcSet-Cookie: stolen=1"

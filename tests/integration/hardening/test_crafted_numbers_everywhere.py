"""Our own generator beside schemathesis: every documented body field and query parameter, sent
numbers no client should send (huge exponents, thousands of digits), and odd headers. No answer
may be a 5xx (API.md §1.9)."""

from __future__ import annotations

import uuid

CRAFTED_NUMBERS = [
    "1e9999999999999999999",
    "-1e9999999999999999999",
    "1e-9999999999999999999",
    "1E+1000000",
    "-1e1000000",
    "1e-1000000",
    "9" * 5000,
    "-" + "9" * 400 + ".5",
    "1e308",
    '"1e1000000"',
    '"1E+999999999999999999"',
    '"' + "9" * 5000 + '"',
]
ODD_HEADERS = [
    {"Content-Type": "application/json; charset=utf-8; x=" + "a" * 2000},
    {"Authorization": "Bearer " + "a" * 6000},
    {"Authorization": "Bearer a.b.c"},
    {"X-Request-ID": "\x7f" * 10},
    {"Origin": "null"},
    {"Content-Length": "0"},
]


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    found = []
    for path, methods in document["paths"].items():
        concrete = path
        while "{" in concrete:
            start, end = concrete.index("{"), concrete.index("}")
            concrete = concrete[:start] + str(uuid.uuid4()) + concrete[end + 1 :]
        for method, operation in methods.items():
            found.append((method.upper(), concrete, operation))
    return found


async def test_crafted_numbers_and_odd_headers_never_make_a_5xx(client, admin):
    document = (await client.get("/docs/openapi.json")).json()
    operations = _operations(document)
    assert len(operations) > 20
    server_errors = []
    sent = 0
    auth = {"Authorization": f"Bearer {admin.token}"}
    for method, path, operation in operations:
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        fields = list(body.get("properties", {})) + ["junk"] if body else []
        queries = [parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "query"]
        for number in CRAFTED_NUMBERS:
            for field in fields:
                raw = '{"' + field + '": ' + number + "}"
                response = await client.request(
                    method, path, content=raw.encode(), headers={**auth, "Content-Type": "application/json"}
                )
                sent += 1
                if response.status_code >= 500:
                    server_errors.append((method, path, field, number[:30], response.status_code))
            for name in queries:
                response = await client.request(method, path, params={name: number.strip('"')}, headers=auth)
                sent += 1
                if response.status_code >= 500:
                    server_errors.append((method, path, name, number[:30], response.status_code))
        for headers in ODD_HEADERS:
            response = await client.request(method, path, headers={**auth, **headers})
            sent += 1
            if response.status_code >= 500:
                server_errors.append((method, path, str(headers)[:40], response.status_code))
    assert sent > 500
    assert server_errors == []

"""Property-based API testing: schemathesis drives every operation of the served OpenAPI document
as an anonymous caller, a user and an admin, and checks that no response is a 5xx and that every
response fits the schema documented for its status code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from server.seed import load_demo_seed
from tests.conftest import TEST_KEY
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 12
MONEY_OPERATIONS = {
    "POST /api/v1/purchases",
    "GET /api/v1/purchases",
    "GET /api/v1/purchases/{purchase_id}",
    "POST /api/v1/purchases/{purchase_id}/confirmation",
    "PATCH /api/v1/purchases/{purchase_id}/reverse",
    "GET /api/v1/users/me/purchases",
    "GET /api/v1/users/me/wallet",
    "GET /api/v1/users/me/wallet/transactions",
    "POST /api/v1/users/me/payouts",
    "GET /api/v1/users/me/payouts",
    "GET /api/v1/payouts",
    "PATCH /api/v1/payouts/{payout_id}",
}


@pytest.fixture(scope="module")
def served(databases) -> Iterator[dict]:
    name = databases.create("schemathesis")
    url = databases.url(name)
    asyncio.run(load_demo_seed(url))
    # Logins are throttled per email: keep the generated ones from blocking the fixture's accounts.
    server = ServerProcess(url, TEST_KEY, env={"LOGIN_MAX_FAILURES": "1000000"}).start()
    tokens = {}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for role, email in (("user", "alice@clicknback.com"), ("admin", "carol@clicknback.com")):
            response = http.post("/api/v1/auth/login", json={"email": email, "password": "Str0ng!Pass"})
            assert response.status_code == 200, response.text
            tokens[role] = response.json()["access_token"]
    yield {"server": server, "tokens": tokens}
    server.stop()
    databases.drop(name)


@pytest.fixture(scope="module")
def api_schema(served):
    return schemathesis.openapi.from_url(served["server"].url + "/docs/openapi.json")


bounded = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def _run_every_operation(api_schema, served, role: str) -> None:
    """Every operation of the document, each with a bounded number of generated requests; all
    failures are collected so one run reports every broken operation."""
    headers = {"Authorization": f"Bearer {served['tokens'][role]}"} if role != "anonymous" else {}
    failures: list[str] = []
    labels = set()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        labels.add(operation.label)

        @given(case=operation.as_strategy())
        @bounded
        def exercise(case) -> None:
            response = case.call(base_url=served["server"].url, headers=headers, timeout=30)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            exercise()
        except Exception as error:  # noqa: BLE001 - collect, then fail with all of them
            failures.append(f"{operation.label} as {role}: {type(error).__name__}: {str(error)[:2000]}")
    assert MONEY_OPERATIONS <= labels, f"undocumented: {sorted(MONEY_OPERATIONS - labels)}"
    assert not failures, "\n\n".join(failures)


def test_as_anonymous(api_schema, served):
    _run_every_operation(api_schema, served, "anonymous")


def test_as_user(api_schema, served):
    _run_every_operation(api_schema, served, "user")


def test_as_admin(api_schema, served):
    _run_every_operation(api_schema, served, "admin")

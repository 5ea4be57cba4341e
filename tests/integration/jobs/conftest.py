from tests.integration.purchases.conftest import business_warnings  # noqa: F401 - shared fixture

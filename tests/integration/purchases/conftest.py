import pytest
from loguru import logger


@pytest.fixture
def business_warnings():
    """Every business.warning logged during the test, as its bound fields."""
    captured: list[dict] = []

    def sink(message) -> None:
        extra = message.record["extra"]
        if extra.get("event") == "business.warning":
            captured.append(dict(extra))

    handler = logger.add(sink, level="WARNING")
    yield captured
    logger.remove(handler)

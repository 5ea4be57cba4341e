"""The background purchase-verification job (API.md §4.7). One tick processes what is due."""

from __future__ import annotations

from server.config import Settings


async def tick(settings: Settings) -> int:
    """Process every due purchase; returns how many were processed."""
    return 0

"""Runs the verification job in this process: first tick at start-up, then every interval.

A failed tick is logged and the loop goes on; correctness rests on database locks, so any number
of processes on any number of hosts may run it at once.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from server.config import Settings
from server.jobs import verification


async def run_forever(settings: Settings, stop: asyncio.Event) -> None:
    interval = settings.purchase_confirmation_interval_seconds
    while not stop.is_set():
        started = time.perf_counter()
        try:
            processed = await verification.tick(settings)
            logger.bind(
                event="job.tick", processed=processed, duration_ms=round((time.perf_counter() - started) * 1000, 3)
            ).debug("verification tick")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop must never die
            logger.bind(event="job.tick", error=type(error).__name__).opt(exception=error).error(
                "verification tick failed: {}", type(error).__name__
            )
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass

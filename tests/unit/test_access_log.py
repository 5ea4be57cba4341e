"""The batched access log (server/logs.py AccessLog): every line reaches the sink, in order, whatever the loop."""

import asyncio
import json
import time

from loguru import logger

from server import logs


def capture() -> tuple[list[str], int]:
    lines: list[str] = []
    handler = logger.add(
        lambda message: lines.extend(message.record["extra"]["_json"].splitlines()), format="{message}", level="INFO"
    )
    return lines, handler


async def until(condition, seconds: float = 2.0) -> None:
    """Poll `condition` until it holds or the deadline passes."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.001)


def test_lines_of_one_loop_turn_arrive_in_one_batch_in_order():
    access = logs.AccessLog()
    access.json = True
    logger.configure(patcher=logs._patch)
    lines, handler = capture()
    try:

        async def serve() -> None:
            for number in range(3):
                access.write(f"GET /{number} 200", {"request_id": f"r{number}", "status": 200})
            assert lines == []  # not yet: within FLUSH_AFTER_SECONDS
            await until(lambda: len(lines) == 3)

        asyncio.run(serve())
    finally:
        logger.remove(handler)
        logger.configure(patcher=None)
    records = [json.loads(line) for line in lines]
    assert [r["request_id"] for r in records] == ["r0", "r1", "r2"]
    assert {r["event"] for r in records} == {"http.request"} and records[0]["message"] == "GET /0 200"


def test_a_flush_pending_on_a_stopped_loop_does_not_stall_the_next_loop():
    access = logs.AccessLog()
    access.json = True
    logger.configure(patcher=logs._patch)
    lines, handler = capture()
    try:

        async def first() -> None:
            access.write("GET /a 200", {"request_id": "a"})  # the loop ends before its flush runs

        async def second() -> None:
            access.write("GET /b 200", {"request_id": "b"})
            await until(lambda: len(lines) == 2)

        asyncio.run(first())
        asyncio.run(second())
    finally:
        logger.remove(handler)
        logger.configure(patcher=None)
    assert [json.loads(line)["request_id"] for line in lines] == ["a", "b"]


def test_access_lines_carry_the_local_time_with_its_offset():
    access = logs.AccessLog()
    access.json = True
    logger.configure(patcher=logs._patch)
    lines, handler = capture()
    try:
        access.write("GET / 200", {"status": 200})
        access.flush()
    finally:
        logger.remove(handler)
    stamp = json.loads(lines[0])["time"]
    from datetime import datetime

    written = datetime.fromisoformat(stamp)
    assert written.utcoffset() == datetime.now().astimezone().utcoffset()
    assert abs((datetime.now().astimezone() - written).total_seconds()) < 60

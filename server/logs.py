"""Structured logging through loguru (operation-plan §4.1).

JSON lines on stdout (and in LOG_FILE when set, rotated daily into timestamped files), or a
readable console format for development. The standard library's and Sanic's loggers are routed
into the same sink. `diagnose` is off everywhere, so tracebacks never carry local variables
(passwords, tokens). Every line written while a request is handled carries its request_id.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_RESERVED = {"event"}


def _json_line(record: Record) -> str:
    extra = record["extra"]
    payload: dict[str, Any] = {
        "time": record["time"].astimezone().isoformat()
        if record["time"].tzinfo is None
        else record["time"].isoformat(),
        "level": record["level"].name,
        "event": extra.get("event", "app.log"),
        "message": record["message"],
    }
    request_id = extra.get("request_id") or REQUEST_ID.get()
    if request_id:
        payload["request_id"] = request_id
    for key, value in extra.items():
        if key not in _RESERVED and not key.startswith("_") and key != "request_id":
            payload[key] = value
    if record["exception"] is not None:
        payload["exception"] = "".join(_format_exception(record["exception"]))
    return orjson.dumps(payload, default=str).decode()


def _format_exception(exception: Any) -> list[str]:
    import traceback

    kind, value, tb = exception
    return traceback.format_exception(kind, value, tb)


def _patch(record: Record) -> None:
    extra = record["extra"]
    extra["_json"] = extra["_lines"] if "_lines" in extra else _json_line(record)


class AccessLog:
    """The `http.request` line of every response, the hottest log call of the service.

    A loguru call costs many times what building the same JSON line directly does, so this builds
    the line and hands the lines of the last few milliseconds to loguru as one record (same sinks,
    rotation and levels): under load a batch of dozens costs one call. A line waits at most
    FLUSH_AFTER_SECONDS; the stop listener flushes what is left. In console format it is an ordinary log call.
    """

    FLUSH_AFTER_SECONDS = 0.01

    def __init__(self) -> None:
        self.json = False  # until configure() installs the JSON sinks
        self.enabled = True
        self._pending: list[str] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on
        # The local time zone, as loguru's own lines show it. Looked up once per batch, as it costs
        # more than the rest of a line; a change of offset (DST) shows from the next batch.
        self._zone = datetime.now().astimezone().tzinfo

    def write(self, message: str, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if not self.json:
            logger.bind(event="http.request", **fields).info(message)
            return
        payload = {
            "time": datetime.now(self._zone).isoformat(),
            "level": "INFO",
            "event": "http.request",
            "message": message,
            **fields,
        }
        self._pending.append(orjson.dumps(payload, default=str).decode())
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: write now
            self.flush()
            return
        # A flush scheduled on a loop that has since stopped (one app stopped, another started in
        # the same process) would never run: schedule one on this loop.
        if self._flush_loop is not loop:
            loop.call_later(self.FLUSH_AFTER_SECONDS, self.flush)
            self._flush_loop = loop

    def flush(self) -> None:
        self._flush_loop = None
        self._zone = datetime.now().astimezone().tzinfo
        lines, self._pending = self._pending, []
        if lines:
            logger.bind(_lines="\n".join(lines)).info("http.request lines")


ACCESS_LOG = AccessLog()


# Library messages about what a client sent, which the library logs at ERROR: a client's mistake
# is INFO (API.md §1.9), so an alert on ERROR lines never fires for anyone's curl.
CLIENT_MISTAKES = (
    " body not consumed.",  # Sanic: a body sent with a request whose route reads none (a GET)
)


class _InterceptHandler(logging.Handler):
    """Send standard-library records (Sanic, asyncio, aerich) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        if record.levelno >= logging.ERROR and record.name.startswith("sanic."):
            if record.getMessage().endswith(CLIENT_MISTAKES):
                level = "INFO"
        logger.bind(event=f"lib.{record.name}").opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


CONSOLE_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[event]}</cyan> {message} <dim>{extra[_context]}</dim>"
)


def _console_patch(record: Record) -> None:
    extra = record["extra"]
    extra.setdefault("event", "app.log")
    context = {k: v for k, v in extra.items() if k not in {"event", "_context", "_json"}}
    request_id = REQUEST_ID.get()
    if request_id and "request_id" not in context:
        context["request_id"] = request_id
    extra["_context"] = " ".join(f"{k}={v}" for k, v in context.items())


def _console_and_json_patch(record: Record) -> None:
    _console_patch(record)
    _patch(record)


def _json_format(_record: Record) -> str:
    """The JSON sinks' format: the line _patch built, which carries any traceback in its
    "exception" field. A format given as a string makes loguru append the traceback again, as raw
    lines after the JSON one, which log readers cannot parse; given as a function it does not."""
    return "{extra[_json]}\n"


def configure(log_format: str = "json", level: str = "INFO", log_file: str = "") -> None:
    logger.remove()
    ACCESS_LOG.json = log_format == "json"
    ACCESS_LOG.enabled = logger.level(level).no <= logger.level("INFO").no
    if log_format == "console":
        logger.configure(patcher=_console_patch)
        logger.add(
            sys.stderr,
            level=level,
            format=CONSOLE_FORMAT,
            colorize=sys.stderr.isatty(),
            backtrace=False,
            diagnose=False,
        )
    else:
        logger.configure(patcher=_patch)
        logger.add(sys.stdout, level=level, format=_json_format, backtrace=False, diagnose=False)
    if log_file:
        if log_format == "console":
            logger.configure(patcher=_console_and_json_patch)
        # Rotation renames the live file to a timestamped one beside it; archival ships those.
        logger.add(
            log_file,
            level=level,
            format=_json_format,
            rotation="00:00",
            backtrace=False,
            diagnose=False,
            encoding="utf-8",
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
    for name in ("sanic.root", "sanic.error", "sanic.server", "sanic.access", "asyncio", "aerich"):
        library_logger = logging.getLogger(name)
        library_logger.handlers = [_InterceptHandler()]
        library_logger.propagate = False
    # Tortoise logs query parameters at DEBUG: never let them through.
    for name in ("tortoise", "tortoise.db_client", "asyncpg"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("sanic.access").setLevel(logging.WARNING)  # we write our own request line

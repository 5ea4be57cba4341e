"""`--plans`: EXPLAIN (ANALYZE, BUFFERS) of the statements the list endpoints really run.

PostgreSQL's auto_explain logs the plan of every statement of a session that loaded it, so the plans
are those of today's code, whatever SQL the data layer builds. Only one extra instance, started
after the database is told to preload auto_explain, has such sessions; the measured instances'
sessions never load it. Each request runs twice and the second (warm) one's plans are kept.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

SETTINGS = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "on",
}
PREFIX = re.compile(r"^\S+ \S+ \S+ \[\d+\] (LOG|DETAIL|STATEMENT):\s*")


def capture(
    psql: Callable[[str], str],
    log_file: Path,
    start_instance: Callable[[], tuple[subprocess.Popen, str]],
    stop_instance: Callable[[subprocess.Popen], None],
    requests: list[tuple[str, str, str]],
) -> str:
    """`requests`: (name, path, bearer token). Returns the plans as text, one section per request."""
    for name, value in SETTINGS.items():
        psql(f"ALTER DATABASE bench SET {name} = '{value}'")
    process = None
    sections = []
    try:
        process, base_url = start_instance()
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for name, path, token in requests:
                headers = {"Authorization": f"Bearer {token}"}
                client.get(path, headers=headers)  # warms the caches; its plans are not kept
                offset = log_file.stat().st_size
                response = client.get(path, headers=headers)
                logged = log_file.read_text(errors="replace")[offset:]
                sections.append(f"### {name}: GET {path} -> {response.status_code}\n{_plans_only(logged)}")
    finally:
        if process is not None:
            stop_instance(process)
        psql("ALTER DATABASE bench RESET ALL")
    return "\n\n".join(sections) + "\n"


def _plans_only(logged: str) -> str:
    """The log's duration/plan entries, without log-line prefixes; statements of authentication
    (the caller's user row) are kept too: they are part of what the request costs."""
    return "\n".join(PREFIX.sub("", line) for line in logged.splitlines() if line.strip())

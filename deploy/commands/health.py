"""Health probes and logs: the readiness poller run on the host, curl probes and log tails."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from deploy.commands.layout import Layout, q
from deploy.ops.stats.model import HEALTH_PROBE_PREFIX

FAST_POLL_INTERVAL = 0.1
FAST_POLL_SECONDS = 5

# The poller's source, sent with each gate and run by the host's Python with -c (see its docstring).
READINESS_POLLER = (Path(__file__).resolve().parents[1] / "ops" / "readiness_poller.py").read_text()


def readiness_poll_command(
    urls: list[str],
    timeout: int,
    interval: float,
    python: str = "python3",
    supervisor_socket: str = "",
    programs: list[str] | None = None,
    fast_for: float = FAST_POLL_SECONDS,
) -> str:
    """Poll URLs on the host until each answers 200 or `timeout` seconds pass.

    Every FAST_POLL_INTERVAL for the first `fast_for` seconds (an instance usually becomes ready
    then, and a 1 s poll would add up to a second to every switch), then every `interval`. From
    then on it also stops early when supervisor (at `supervisor_socket`) has marked the URL's
    program FATAL: it died on every start, so waiting out the timeout would prove nothing more.
    Exits 0 when all are healthy; otherwise prints, per URL that is not, the last status and
    body (`<url> answered HTTP <status> after <n>s...:`) and exits 1.
    """
    programs = programs or [""] * len(urls)
    pairs = " ".join(f"{q(url)} {q(program)}" for url, program in zip(urls, programs))
    return (
        f"{python} -I -S -c {q(READINESS_POLLER)} {int(timeout)} {interval:g} {fast_for:g}"
        f" {FAST_POLL_INTERVAL:g} {q(supervisor_socket)} {pairs}"
    )


def health_poll_command(url: str, timeout: int, interval: float) -> str:
    """Poll one URL on the host until it answers 200 or `timeout` seconds pass (see above)."""
    return readiness_poll_command([url], timeout, interval)


def curl_target(url: str) -> str:
    """curl's arguments for an instance URL; http+unix://<%-encoded socket>/path goes through the socket."""
    parts = urlsplit(url)
    if parts.scheme != "http+unix":
        return q(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return f"--unix-socket {q(unquote(parts.netloc))} {q('http://localhost' + (path or '/'))}"


def probe_command(url: str) -> str:
    """One probe: prints `<status> <body>` (status 000 when nothing answers). It names itself
    (X-Request-ID health-probe-...) so `stats` does not count it as a client's request."""
    request_id = f"{HEALTH_PROBE_PREFIX}$(date +%s%N)-$$"
    return (
        f'body=$(mktemp) && code=$(curl -s -o "$body" -w \'%{{http_code}}\' -m 3 -H "X-Request-ID: {request_id}"'
        f" {curl_target(url)});"
        f' printf \'%s \' "$code"; head -c 600 "$body"; echo; rm -f "$body"'
    )


def tail_logs_command(
    layout: Layout, ports: tuple[int, ...], lines: int, follow: bool, with_output: bool = False
) -> str:
    """The JSON logs of the instances on `ports`; `with_output` adds what supervisor captured of
    their stdout/stderr (a crash before logging starts, e.g. an import error, is only there)."""
    paths = [layout.app_log(port) for port in ports]
    paths += [layout.program_output(port) for port in ports] if with_output else []
    files = " ".join(q(path) for path in paths)
    if follow:
        return f"tail -n {int(lines)} -F {files}"
    return f"tail -n {int(lines)} {files} 2>/dev/null; true"


def instance_output_tail_command(layout: Layout, port: int, lines: int) -> str:
    """The last lines an instance wrote (stdout+stderr as supervisor captured them)."""
    return f"tail -n {int(lines)} {q(layout.program_output(port))} 2>/dev/null || true"

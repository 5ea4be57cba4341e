"""Health probes and logs: the readiness poller run on the host, curl probes and log tails."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from deploy.commands.layout import Layout, q

FAST_POLL_INTERVAL = 0.1
FAST_POLL_SECONDS = 5

# The readiness poller runs on the host with its Python (stdlib only). One process polls every
# URL of a gate: a poll costs a connect, where a `curl` run per poll costs about 11 ms of CPU,
# which booting instances on a small host feel (4 instances at 10 polls/s = half a core).
READINESS_POLLER = r"""
import http.client, socket, sys, time
from urllib.parse import unquote, urlsplit


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def probe(url):
    parts = urlsplit(url)
    if parts.scheme == "http+unix":  # http+unix://<%-encoded socket path>/path
        connection = UnixHTTPConnection(unquote(parts.netloc), timeout=2)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=2)
    try:
        connection.request("GET", (parts.path or "/") + ("?" + parts.query if parts.query else ""))
        response = connection.getresponse()
        return "%03d" % response.status, response.read(600).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return "000", ""
    finally:
        connection.close()


def fatal(socket_path, program):
    body = ("<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getProcessInfo</methodName><params>"
            "<param><value><string>%s</string></value></param></params></methodCall>" % program)
    connection = UnixHTTPConnection(socket_path)
    try:
        connection.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
        return b"<string>FATAL</string>" in connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def main(timeout, interval, fast_for, fast_interval, socket_path, *urls_and_programs):
    timeout, interval, fast_for, fast_interval = map(float, (timeout, interval, fast_for, fast_interval))
    pending = dict(zip(urls_and_programs[0::2], urls_and_programs[1::2]))
    last, dead = {}, {}
    began = time.monotonic()
    while True:
        for url in list(pending):
            last[url] = probe(url)
            if last[url][0] == "200":
                del pending[url]
        elapsed = time.monotonic() - began
        if not pending or elapsed >= timeout:
            break
        if elapsed < fast_for:
            time.sleep(fast_interval)
            continue
        dead = {url: program for url, program in pending.items()
                if socket_path and program and fatal(socket_path, program)}
        if dead:
            break
        time.sleep(interval)
    for url in pending:
        code, body = last[url]
        reason = " (%s is FATAL: it exited on every start)" % dead[url] if url in dead else ""
        print("%s answered HTTP %s after %ds%s:" % (url, code, elapsed, reason))
        print(body)
    return 1 if pending else 0


sys.exit(main(*sys.argv[1:]))
"""


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
    """One probe: prints `<status> <body>` (status 000 when nothing answers)."""
    return (
        f"body=$(mktemp) && code=$(curl -s -o \"$body\" -w '%{{http_code}}' -m 3 {curl_target(url)});"
        f' printf \'%s \' "$code"; head -c 600 "$body"; echo; rm -f "$body"'
    )


def tail_logs_command(layout: Layout, ports: tuple[int, ...], lines: int, follow: bool) -> str:
    """The instances' JSON logs (live and standby ports: a slot's log moves between them)."""
    files = " ".join(q(layout.app_log(port)) for port in ports)
    if follow:
        return f"tail -n {int(lines)} -F {files}"
    return f"tail -n {int(lines)} {files} 2>/dev/null; true"


def instance_output_tail_command(layout: Layout, port: int, lines: int) -> str:
    """The last lines an instance wrote (stdout+stderr as supervisor captured them)."""
    return f"tail -n {int(lines)} {q(layout.program_output(port))} 2>/dev/null || true"

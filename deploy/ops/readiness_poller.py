"""The readiness gate's poller, run on the host with its own Python (`python -I -S`, stdlib only).

One process polls every URL of a gate: a poll costs a connect, where a `curl` run per poll costs
milliseconds of CPU that booting instances on a small host feel. The deploy tooling sends this
file's text with each gate (deploy/commands/health.py) rather than running it from a release, so a
rollback to a release built before this file existed is gated by the same poller.

    python3 -I -S readiness_poller.py TIMEOUT INTERVAL FAST_FOR FAST_INTERVAL SUPERVISOR_SOCKET URL PROGRAM...

Exits 0 once every URL answered 200; otherwise prints, per URL that did not, its last status and
body (`<url> answered HTTP <status> after <n>s...:`) and exits 1.
"""

import http.client
import itertools
import os
import socket
import sys
import time
import xmlrpc.client
from urllib.parse import unquote, urlsplit


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


# Every probe's X-Request-ID, so `stats` and `handoff` can tell the gate's probes of standby
# instances from client traffic (deploy/ops/stats/model.py's GATE_PROBE_PREFIX, the same text).
GATE_PROBE_PREFIX = "gate-probe-"
_PROBES = itertools.count(1)


def probe(url):
    """(status as three digits, the body's first 600 bytes); "000" when nothing answers."""
    parts = urlsplit(url)
    if parts.scheme == "http+unix":  # http+unix://<%-encoded socket path>/path
        connection = UnixHTTPConnection(unquote(parts.netloc), timeout=2)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=2)
    try:
        request_id = f"{GATE_PROBE_PREFIX}{os.getpid()}-{next(_PROBES)}"
        path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        connection.request("GET", path, headers={"X-Request-ID": request_id})
        response = connection.getresponse()
        return f"{response.status:03d}", response.read(600).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return "000", ""
    finally:
        connection.close()


def fatal(socket_path, program):
    """Whether supervisor gave up on `program` (FATAL: it exited on every start)."""
    body = xmlrpc.client.dumps((program,), "supervisor.getProcessInfo")
    connection = UnixHTTPConnection(socket_path)
    try:
        connection.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
        (info,), _ = xmlrpc.client.loads(connection.getresponse().read())
        return info.get("statename") == "FATAL"
    except (OSError, http.client.HTTPException, xmlrpc.client.Error, ValueError):
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
        dead = {
            url: program for url, program in pending.items() if socket_path and program and fatal(socket_path, program)
        }
        if dead:
            break
        time.sleep(interval)
    for url in pending:
        code, body = last[url]
        reason = f" ({dead[url]} is FATAL: it exited on every start)" if url in dead else ""
        print(f"{url} answered HTTP {code} after {int(elapsed)}s{reason}:")
        print(body)
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

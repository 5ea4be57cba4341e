"""Listening on a Unix socket, as production's instances do behind nginx (inventory instance_listen).

Stdlib only: deploy.inventory checks its socket paths against MAX_SOCKET_PATH.
"""

from __future__ import annotations

import contextlib
import os
import socket

# How long nginx keeps an idle connection to an instance (its upstream keepalive_timeout,
# deploy/commands/nginx.py): a stopping instance waits that long before it closes an idle one
# (server/drain.py). Short for that reason: a connection in use is reused well within it, and
# reconnecting over a Unix socket is cheap.
PROXY_KEEPALIVE_SECONDS = 2

# sockaddr_un holds 107 bytes of path. Sanic's own `unix=` binds under the path plus a 44-character
# random suffix, which left too little room for deploy roots under a temp folder; ours adds the pid.
MAX_SOCKET_PATH = 107 - len(".4194304")


def unix_socket_problem(path: str) -> str | None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"the socket's folder {folder} does not exist"
    if len(os.path.abspath(path).encode()) > MAX_SOCKET_PATH:
        return f"the socket path is longer than {MAX_SOCKET_PATH} bytes: {os.path.abspath(path)}"
    return None


def bind_unix_socket(path: str, backlog: int = 100) -> socket.socket:
    """A listening Unix socket at `path`, put in place atomically: bound and listening under a
    temporary name first, then renamed over the path, so nginx never finds the path without a
    listener behind it while an instance restarts. Mode 0666 like a loopback port: any local
    process may connect (nginx's workers may run as another user)."""
    path = os.path.abspath(path)
    temporary = f"{path}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(temporary)
        os.chmod(temporary, 0o666)
        sock.listen(backlog)
        os.rename(temporary, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return sock


def remove_unix_socket(path: str) -> None:
    """Remove the socket file once nothing listens on it; a newer instance's socket stays."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    except OSError:
        pass
    finally:
        probe.close()

"""A loopback TCP proxy that can stall or cut traffic after N bytes, to break uploads on purpose.

Sits between boto3 and moto: stopping moto itself would lose its in-memory bucket, whereas a cut
proxy leaves the bucket intact so the test can check what was (not) stored and then succeed again.
"""

from __future__ import annotations

import socket
import threading


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.bytes_up = 0  # client -> upstream
        self._trip_at: int | None = None
        self._trip_action = ""
        self.tripped = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._severed = False
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stall_after(self, byte_count: int) -> None:
        """Once `byte_count` bytes went upstream, hold every further byte until resume()."""
        with self._lock:
            self._trip_at, self._trip_action = self.bytes_up + byte_count, "stall"

    def sever_after(self, byte_count: int) -> None:
        """Once `byte_count` bytes went upstream, drop every connection and refuse new ones until resume()."""
        with self._lock:
            self._trip_at, self._trip_action = self.bytes_up + byte_count, "sever"

    def resume(self) -> None:
        with self._lock:
            self._trip_at = None
            self._severed = False
            self.tripped.clear()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._severed:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update({client, upstream})
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket, upstream: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if upstream and self._account(len(data)):
                    return
                self._flowing.wait()
                if self._severed or self._closed:
                    return
                destination.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, destination):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _account(self, size: int) -> bool:
        """Count bytes; trip when the threshold is crossed. True = this connection was cut."""
        with self._lock:
            self.bytes_up += size
            if self._trip_at is None or self.bytes_up < self._trip_at:
                return False
            action = self._trip_action
            self._trip_at = None
            if action == "stall":
                self._flowing.clear()
            else:
                self._severed = True
            self.tripped.set()
        if action == "sever":
            self._drop_all()
            return True
        return False

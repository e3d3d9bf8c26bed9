"""A TCP proxy between terminal and broker that the test controls: pass, drop or stall connections."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class Proxy:
    """Listens on a free loopback port and forwards to ``target``.

    ``drop()`` cuts every connection (RST) and refuses new ones until ``heal()``:
    a pulled cable or a dead switch. ``stall()`` keeps connections open but
    forwards nothing, in either direction, until ``heal()``: a black-holed route,
    which only the MQTT keepalive notices.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._mode = "pass"
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        self.connections = 0

    def drop(self) -> None:
        with self._lock:
            self._mode = "drop"
            for sock in list(self._pairs):
                self._close(sock)

    def stall(self) -> None:
        with self._lock:
            self._mode = "stall"

    def heal(self) -> None:
        with self._lock:
            self._mode = "pass"

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                with self._lock:
                    if key.fileobj is self._server:
                        self._accept()
                    elif self._mode == "pass" and key.fileobj in self._pairs:
                        self._forward(key.fileobj)  # type: ignore[arg-type]
            if self._mode == "stall":
                self._stop.wait(0.05)  # level-triggered: don't spin on unread data

    def _accept(self) -> None:
        client, _ = self._server.accept()
        if self._mode == "drop":
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            _reset(client)
            return
        self.connections += 1
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._selector.register(sock, selectors.EVENT_READ)
        self._pairs[client], self._pairs[upstream] = upstream, client

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        other = self._pairs[sock]
        try:
            other.setblocking(True)  # a short blocking send keeps the proxy simple; loopback is fast
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        other = self._pairs.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self._pairs.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(s)
            _reset(s)

    def close(self) -> None:
        """Stop forwarding and close everything; safe twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for sock in list(self._pairs):
                self._close(sock)
        self._selector.close()
        self._server.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: the peer sees the connection die, not end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.close()

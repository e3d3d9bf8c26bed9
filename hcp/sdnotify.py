"""systemd's notify protocol: READY=1 once serving, WATCHDOG=1 from the main loop.

A unit with ``Type=notify`` and ``WatchdogSec=`` sets ``$NOTIFY_SOCKET`` and
``$WATCHDOG_USEC``; we write datagrams to that socket with the stdlib. Without
``$NOTIFY_SOCKET`` (a terminal session, the tests) every call is a no-op. The
watchdog ping comes only from the loop that does the work, so a hung loop stops
the pings and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("hcp.sdnotify")


class Notifier:
    """Sends notify messages; ``watchdog()`` is cheap to call often (rate-limited to half the interval)."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address = address
        self.interval_s = watchdog_usec / 2e6 if watchdog_usec else None
        self._clock = clock
        self._last_ping = float("-inf")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd's environment describes (a no-op one outside systemd)."""
        env = os.environ if env is None else env
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            usec = ""  # the watchdog is meant for another process of the unit
        return cls(env.get("NOTIFY_SOCKET") or None, int(usec) if usec.isdigit() else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str = "") -> None:
        """Tell systemd start-up is done (Type=notify waits for this)."""
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        """Ping the watchdog, at most twice per WatchdogSec."""
        if self.interval_s is None:
            return
        now = self._clock()
        if now - self._last_ping < self.interval_s:
            return
        self._last_ping = now
        self.send("WATCHDOG=1")

    def send(self, message: str) -> None:
        if self.address is None:
            return
        address = self.address
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), address)
        except OSError as err:
            log.warning("cannot notify systemd at %s: %s", self.address, err)

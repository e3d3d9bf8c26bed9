"""One process per identity: a lock file in the data directory that names its holder.

Two agents on one data directory (or two collectors with one client id) would
share an outbox and take each other's MQTT session over several times a second.
The second one is refused at start with a line naming the first. ``flock`` is
released by the kernel when the holder dies, so a crash leaves no stale lock;
the file holds the holder's PID and command line for the message (a library
such as filelock does not record who holds a lock).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hcp.exc import InstanceRunning


class InstanceLock:
    """An exclusive lock on ``path`` held until :meth:`close`; ``what`` names the identity in messages."""

    def __init__(self, path: Path | str, what: str) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise InstanceRunning(f"{what} already runs as {holder} (lock {self.path}); stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} ({_command_line()})\n".encode())
        self._fd = fd

    def close(self) -> None:
        """Release the lock; safe twice. The file stays (removing it would race a new holder)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _command_line() -> str:
    try:
        return Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "hcp"

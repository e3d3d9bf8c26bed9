"""What the terminal knows about time: now, whether to trust it, boot id and uptime.

A Raspberry Pi has no battery-backed clock: until NTP answers, its time may be
hours or years off. Every rating therefore carries ``clock_synced`` and the
pair (``boot_id``, ``uptime_s``) so the collector can place an unsynced rating
on the timeline later. Paths are injectable so tests need no systemd.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

from hcp.domain import now_cst
from hcp.exc import ConfigError

#: systemd-timesyncd creates this file once it has synchronised the clock.
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
UPTIME = Path("/proc/uptime")

SyncedSetting = Literal["auto", "yes", "no"]


class Clock:
    """The terminal's clock facts; ``synced`` is re-checked on every call (a stat)."""

    def __init__(self, synced: SyncedSetting = "auto", *, flag: Path = TIMESYNC_FLAG, boot_id_file: Path = BOOT_ID,
                 uptime_file: Path = UPTIME, now: Callable[[], datetime] = now_cst) -> None:
        if synced not in ("auto", "yes", "no"):
            raise ConfigError(f"clock.synced: expected auto, yes or no, got {synced!r}")
        self._setting = synced
        self._flag = flag
        self._uptime_file = uptime_file
        self._now = now
        self._boot_id = _read_first_line(boot_id_file)

    def now(self) -> datetime:
        """The wall-clock time, aware, in China Standard Time."""
        return self._now()

    @property
    def synced(self) -> bool:
        """Whether the wall clock can be trusted for ``rated_at``."""
        if self._setting == "auto":
            return self._flag.exists()
        return self._setting == "yes"

    @property
    def boot_id(self) -> str | None:
        """This boot's id, or None off Linux; read once: it cannot change while we run."""
        return self._boot_id

    def uptime_s(self) -> float:
        """Seconds since boot, suspend included where the system can tell."""
        text = _read_first_line(self._uptime_file)
        if text:
            try:
                return float(text.split()[0])
            except ValueError:
                pass
        # CLOCK_BOOTTIME counts from boot like /proc/uptime; monotonic is the last resort.
        boottime = getattr(time, "CLOCK_BOOTTIME", None)
        return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


def _read_first_line(path: Path) -> str | None:
    try:
        return path.read_text("ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None

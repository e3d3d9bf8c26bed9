"""Fleet health on the collector: clock references, placing unsynced ratings in time, alerts.

A Raspberry Pi has no real-time clock: until NTP answers its wall clock may
read 2000 or a year ahead. Its ratings then carry ``clock_synced=false`` with
the boot id and the uptime at the press. Each status a terminal publishes
carries its boot id and uptime too, and the collector keeps the last one with
its own receive time: a rating of the same boot happened ``uptime_status -
uptime_rating`` seconds before that status arrived. With no reference for
that boot the receive time is used (a bound: the rating cannot be later).
The store keeps and reads the references (``Store.clock_reference``, ``Store.fleet``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hcp.protocol import Rating


@dataclass(frozen=True)
class ClockRef:
    """A terminal's (boot id, uptime) as it stood when the collector received a status."""

    boot_id: str
    uptime_s: float
    received_at: datetime


def placed_at(rating: Rating, ref: ClockRef | None, received_at: datetime) -> datetime:
    """When a rating happened, by the collector's clock."""
    if rating.clock_synced:
        return rating.rated_at
    if ref is None or rating.boot_id != ref.boot_id or rating.uptime_s is None:
        return received_at
    moment = ref.received_at + timedelta(seconds=rating.uptime_s - ref.uptime_s)
    return min(moment, received_at).astimezone(received_at.tzinfo)


# -- health and alerts --------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """When a terminal deserves the operator's attention."""

    offline_after_s: float = 900
    outbox_depth: int = 100
    outbox_age_s: float = 3600
    stale_after_s: float = 120


@dataclass(frozen=True)
class Health:
    """One terminal as ``hcp devices`` shows it."""

    device_id: str
    hall_id: str
    window_id: str
    online: bool
    last_seen: str | None
    outbox_depth: int | None
    version: str | None
    clock_synced: bool | None
    settings_version: int | None
    alerts: list[str] = field(default_factory=list)


def assess(row: dict, now: datetime, limits: Thresholds) -> Health:
    """Online/offline and alerts for one ``Store.fleet()`` row."""
    seen = _parse(row.get("last_seen"))
    silent_s = (now - seen).total_seconds() if seen else None
    # The retained status says online until the last will says otherwise; a
    # status not refreshed for long means the broker has not noticed yet.
    online = row.get("state") == "online" and silent_s is not None and silent_s <= limits.stale_after_s
    alerts = []
    if not online and (silent_s is None or silent_s > limits.offline_after_s):
        alerts.append("never seen" if silent_s is None else f"offline for {_span(silent_s)}")
    depth = row.get("outbox_depth")
    if depth is not None and depth >= limits.outbox_depth:
        alerts.append(f"outbox holds {depth} ratings")
    oldest = _parse(row.get("oldest_unsent_at"))
    if oldest and online and (now - oldest).total_seconds() > limits.outbox_age_s and depth:
        alerts.append(f"outbox not draining: oldest unsent {_span((now - oldest).total_seconds())} old")
    if row.get("clock_synced") == 0 and online:
        alerts.append("clock not synchronised")
    return Health(row["device_id"], row["hall_id"], row["window_id"], online, row.get("last_seen"), depth,
                  row.get("version"), None if row.get("clock_synced") is None else bool(row["clock_synced"]),
                  row.get("settings_version"), alerts)


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"

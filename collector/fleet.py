"""Fleet health on the collector: clock references, placing unsynced ratings in time, alerts.

A Raspberry Pi has no real-time clock: until NTP answers its wall clock may
read 2000 or a year ahead. Its ratings then carry ``clock_synced=false`` with
the boot id and the uptime at the press. Each status a terminal publishes
carries its boot id and uptime too, and the collector keeps the last one with
its own receive time: a rating of the same boot happened ``uptime_status -
uptime_rating`` seconds before that status arrived. With no reference for
that boot the receive time is used (a bound: the rating cannot be later).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hcp.protocol import Rating, StatusMessage

FLEET_TABLE = """
CREATE TABLE IF NOT EXISTS device_fleet (
    device_id        TEXT PRIMARY KEY REFERENCES devices(device_id) ON DELETE CASCADE,
    settings_version INTEGER,
    boot_id          TEXT,
    uptime_s         REAL,
    clock_ref_at     TEXT
)"""


@dataclass(frozen=True)
class ClockRef:
    """A terminal's (boot id, uptime) as it stood when the collector received a status."""

    boot_id: str
    uptime_s: float
    received_at: datetime


def record_fleet_status(conn: sqlite3.Connection, device_id: str, status: StatusMessage,
                        received_at: datetime) -> None:
    """Keep the settings version and, when the status has one, the clock reference."""
    conn.execute("INSERT INTO device_fleet (device_id) VALUES (?) ON CONFLICT DO NOTHING", (device_id,))
    if status.settings_version is not None:
        conn.execute("UPDATE device_fleet SET settings_version = ? WHERE device_id = ?",
                     (status.settings_version, device_id))
    if status.boot_id and status.uptime_s is not None:
        conn.execute("UPDATE device_fleet SET boot_id = ?, uptime_s = ?, clock_ref_at = ? WHERE device_id = ?",
                     (status.boot_id, status.uptime_s, received_at.astimezone(UTC).isoformat(), device_id))


def clock_reference(conn: sqlite3.Connection, device_id: str) -> ClockRef | None:
    row = conn.execute("SELECT boot_id, uptime_s, clock_ref_at FROM device_fleet WHERE device_id = ?",
                       (device_id,)).fetchone()
    if not row or row[0] is None or row[1] is None or row[2] is None:
        return None
    return ClockRef(row[0], row[1], datetime.fromisoformat(row[2]))


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


FLEET_QUERY = """
SELECT d.device_id, d.hall_id, d.window_id, s.state, s.version, s.outbox_depth, s.oldest_unsent_at,
       s.clock_synced, s.last_seen, f.settings_version
FROM devices d LEFT JOIN device_status s USING (device_id) LEFT JOIN device_fleet f USING (device_id)
ORDER BY d.device_id
"""


def fleet_rows(conn: sqlite3.Connection) -> list[dict]:
    cursor = conn.execute(FLEET_QUERY)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


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

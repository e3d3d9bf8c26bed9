"""The storage layer's fleet queries: terminals' fleet facts and clock references, and button linking.

The rules that use them stay beside the domain: :mod:`hcp.collector.fleet`
(health, alerts, placing an unsynced rating in time) and
:mod:`hcp.collector.linking` (which case a clerk-button rating is linked to).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from hcp.collector.fleet import ClockRef
from hcp.domain import utc_text
from hcp.protocol import StatusMessage

if TYPE_CHECKING:
    from hcp.collector.store.engine import Engine

_FLEET_QUERY = """
SELECT d.device_id, d.hall_id, d.window_id, s.state, s.version, s.outbox_depth, s.oldest_unsent_at,
       s.clock_synced, s.last_seen, f.settings_version
FROM devices d LEFT JOIN device_status s USING (device_id) LEFT JOIN device_fleet f USING (device_id)
ORDER BY d.device_id
"""

# Unrated: no claim on the case or its batch, and no clerk-button rating linked to it.
_CANDIDATES = """
SELECT c.case_id, c.completed_at FROM cases c
WHERE c.hall_id = ? AND c.window_id = ? AND c.intake = 'ok' AND c.completed_at BETWEEN ? AND ?
  AND NOT EXISTS (SELECT 1 FROM rating_claims k WHERE k.unit_key = 'case:' || c.case_id)
  AND (c.batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM rating_claims k WHERE k.unit_key = 'batch:' || c.batch_id))
  AND NOT EXISTS (SELECT 1 FROM rating_links l WHERE l.case_id = c.case_id)
"""


class FleetQueries:
    """What the :class:`~hcp.collector.store.Store` knows of its terminals beyond their registration."""

    _conn: Engine

    def fleet(self) -> list[dict]:
        """Every registered terminal with its last status and fleet facts, for hcp.collector.fleet.assess."""
        cursor = self._conn.execute(_FLEET_QUERY)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def clock_reference(self, device_id: str) -> ClockRef | None:
        """The terminal's (boot id, uptime) at the last status that carried them, or None."""
        row = self._conn.execute("SELECT boot_id, uptime_s, clock_ref_at FROM device_fleet WHERE device_id = ?",
                                 (device_id,)).fetchone()
        if not row or row[0] is None or row[1] is None or row[2] is None:
            return None
        return ClockRef(row[0], row[1], datetime.fromisoformat(row[2]))

    def _record_fleet_status(self, device_id: str, status: StatusMessage, received_at: datetime) -> None:
        """Keep the settings version and, when the status has one, the clock reference; the caller holds the unit."""
        self._conn.execute("INSERT INTO device_fleet (device_id) VALUES (?) ON CONFLICT DO NOTHING", (device_id,))
        if status.settings_version is not None:
            self._conn.execute("UPDATE device_fleet SET settings_version = ? WHERE device_id = ?",
                               (status.settings_version, device_id))
        if status.boot_id and status.uptime_s is not None:
            self._conn.execute("UPDATE device_fleet SET boot_id = ?, uptime_s = ?, clock_ref_at = ? "
                               "WHERE device_id = ?",
                               (status.boot_id, status.uptime_s, received_at.astimezone(UTC).isoformat(), device_id))

    # -- clerk-button linking (hcp.collector.linking) ---------------------------

    def nearest_unrated_case(self, hall_id: str, window_id: str, moment: datetime, minutes: int,
                             taken: set[str]) -> str | None:
        """The unrated case completed at the window closest to ``moment``, within ``minutes``; None if none.

        ``taken``: cases already linked in this call's batch, not yet written.
        """
        reach = timedelta(minutes=minutes)
        low, high = (utc_text(moment - reach), utc_text(moment + reach))
        rows = self._conn.execute(_CANDIDATES, (hall_id, window_id, low, high)).fetchall()
        candidates = [(abs(datetime.fromisoformat(done) - moment), case_id) for case_id, done in rows
                      if case_id not in taken]
        return min(candidates)[1] if candidates else None

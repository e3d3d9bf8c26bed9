"""Linking a clerk-button rating to its case.

A clerk who presses the window's 请评价 button sends no case id. The collector
links such a rating to the case completed at that window closest in time to
the press and not yet rated, within the profile's ``button_link_minutes``. If
no such case has arrived yet, the rating waits (pending) under a key for its
window and is linked when a case record for that window arrives.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from hcp.domain import utc_text

#: The pending_cases key a button rating waits under until its window has a case.
WINDOW_KEY = "@window:{hall_id}:{window_id}"

_CANDIDATES = """
SELECT c.case_id, c.completed_at FROM cases c
WHERE c.hall_id = ? AND c.window_id = ? AND c.intake = 'ok' AND c.completed_at BETWEEN ? AND ?
  AND NOT EXISTS (SELECT 1 FROM rating_claims k WHERE k.unit_key = 'case:' || c.case_id)
  AND (c.batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM rating_claims k WHERE k.unit_key = 'batch:' || c.batch_id))
  AND NOT EXISTS (SELECT 1 FROM rating_links l WHERE l.case_id = c.case_id)
"""


def window_key(hall_id: str, window_id: str) -> str:
    return WINDOW_KEY.format(hall_id=hall_id, window_id=window_id)


def nearest_unrated_case(conn: sqlite3.Connection, hall_id: str, window_id: str, moment: datetime,
                         minutes: int, taken: set[str]) -> str | None:
    """The unrated case completed at the window closest to ``moment``, within ``minutes``; None if none."""
    reach = timedelta(minutes=minutes)
    low, high = (utc_text(moment - reach), utc_text(moment + reach))
    rows = conn.execute(_CANDIDATES, (hall_id, window_id, low, high)).fetchall()
    candidates = [(abs(datetime.fromisoformat(done) - moment), case_id) for case_id, done in rows
                  if case_id not in taken]
    return min(candidates)[1] if candidates else None


def button_moment(rated_at: datetime, clock_synced: bool, received_at: datetime) -> datetime:
    """When the button was pressed: the terminal's clock if synchronised, else the collector's receipt."""
    return rated_at if clock_synced else received_at


"""Linking a clerk-button rating to its case.

A clerk who presses the window's 请评价 button sends no case id. The collector
links such a rating to the case completed at that window closest in time to
the press and not yet rated, within the profile's ``button_link_minutes``. If
no such case has arrived yet, the rating waits (pending) under a key for its
window and is linked when a case record for that window arrives. The search
itself is the store's (``Store.nearest_unrated_case``).
"""

from __future__ import annotations

from datetime import datetime

#: The pending_cases key a button rating waits under until its window has a case.
WINDOW_KEY = "@window:{hall_id}:{window_id}"


def window_key(hall_id: str, window_id: str) -> str:
    return WINDOW_KEY.format(hall_id=hall_id, window_id=window_id)


def button_moment(rated_at: datetime, clock_synced: bool, received_at: datetime) -> datetime:
    """When the button was pressed: the terminal's clock if synchronised, else the collector's receipt."""
    return rated_at if clock_synced else received_at


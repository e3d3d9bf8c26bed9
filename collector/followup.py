"""差评 follow-up: the states, the steps between them, and opening a record per 差评.

A follow-up record is written once when a 差评 is accepted, with the
profile's deadlines; each step (contact, rectification or explanation, close,
spot check) is an event appended after it. The current state is the last
event's, so nothing is ever updated.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hcp.collector.workdays import Calendar
from hcp.config.policy import Deadline, Profile
from hcp.domain import Channel, utc_text

OPEN, CONTACTED, RECTIFIED, EXPLAINED, CLOSED, SPOT_CHECKED = (
    "open", "contacted", "rectified", "explained", "closed", "spot-checked")

#: action → (states it may follow, state it leads to)
STEPS: dict[str, tuple[frozenset[str], str]] = {
    "contact": (frozenset({OPEN}), CONTACTED),
    "rectify": (frozenset({CONTACTED}), RECTIFIED),
    "explain": (frozenset({CONTACTED}), EXPLAINED),
    "close": (frozenset({RECTIFIED, EXPLAINED}), CLOSED),
    "spot-check": (frozenset({CLOSED}), SPOT_CHECKED),
}
_PATH = "open → contacted → rectified | explained → closed → spot-checked"


def step_problem(action: str, state: str, followup_id: int, spot_check: bool) -> str:
    """Why ``action`` may not follow ``state``, or '' when it may."""
    if action not in STEPS:
        return f"unknown step {action!r}; expected one of {', '.join(STEPS)}"
    allowed, _after = STEPS[action]
    if state in allowed:
        if action == "spot-check" and not spot_check:
            return f"follow-up {followup_id} was not drawn for a spot check"
        return ""
    return f"follow-up {followup_id} is {state}: cannot {action} it ({_PATH})"


@dataclass(frozen=True)
class FollowUp:
    """A follow-up as the follow-up staff and supervisors see it (never who rated)."""

    id: int
    rating_id: str
    hall_id: str
    window_id: str
    clerk_id: str | None
    score: int
    rated_at: str
    contact_due: str | None
    rectify_due: str | None
    spot_check: bool
    state: str
    contacted_at: str | None
    resolved_at: str | None  # rectified or explained

    def overdue(self, now: datetime) -> list[str]:
        """Which deadlines have passed with their step not done: 'contact', 'rectify'."""
        at = utc_text(now)
        late = []
        if self.contact_due and self.contacted_at is None and at >= self.contact_due:
            late.append("contact")
        if self.rectify_due and self.resolved_at is None and at >= self.rectify_due:
            late.append("rectify")
        return late


FOLLOWUP_QUERY = """
SELECT f.id, f.rating_id, f.hall_id, f.window_id, f.clerk_id, f.score, f.rated_at, f.contact_due, f.rectify_due,
       f.spot_check,
       COALESCE((SELECT state FROM followup_events e WHERE e.followup_id = f.id ORDER BY id DESC LIMIT 1), 'open'),
       (SELECT min(at) FROM followup_events e WHERE e.followup_id = f.id AND action = 'contact'),
       (SELECT min(at) FROM followup_events e WHERE e.followup_id = f.id AND action IN ('rectify', 'explain'))
FROM followups f
"""


def open_followups(conn: sqlite3.Connection, profile: Profile, calendar: Calendar, rating_ids: Sequence[str],
                   opened_at: datetime) -> int:
    """Open a follow-up for each accepted 差评 among ``rating_ids`` (never for a default)."""
    if not rating_ids:
        return 0
    rows = conn.execute(
        "SELECT rating_id, hall_id, window_id, clerk_id, score, rated_at, clock_synced, received_at FROM ratings "
        "WHERE rating_id IN (SELECT value FROM json_each(?)) AND channel != ? AND score IN "
        "(SELECT value FROM json_each(?)) ORDER BY rowid",
        (json.dumps(list(rating_ids)), Channel.SYSTEM_DEFAULT.value, json.dumps(profile.grades.bad))).fetchall()
    return open_followups_for(conn, profile, calendar, rows, opened_at)


def open_followups_for(conn: sqlite3.Connection, profile: Profile, calendar: Calendar,
                       ratings: Sequence[tuple[str, str, str, str | None, int, str, int, str]],
                       opened_at: datetime) -> int:
    """Open a follow-up for each of ``ratings``, accepted 差评 the caller has in hand, in order of receipt.

    Each is (rating_id, hall_id, window_id, clerk_id, score, rated_at, clock_synced, received_at) as stored:
    the rating path passes the rows it has just written rather than reading them back.
    """
    if not ratings:
        return 0
    next_id = conn.execute("SELECT coalesce(max(id), 0) FROM followups").fetchone()[0] + 1
    opened = utc_text(opened_at)
    records = []
    for number, (rating_id, hall, window, clerk, score, rated_at, synced, received_at) in enumerate(ratings, next_id):
        # The period runs from the rating; an unsynced terminal clock is no witness of it.
        started = rated_at if synced else received_at  # stored as utc_text writes it
        start = datetime.fromisoformat(started)
        records.append((number, rating_id, hall, window, clerk, score, started, opened,
                        _due(calendar, start, profile.followup_contact),
                        _due(calendar, start, profile.followup_rectify),
                        int(drawn_for_spot_check(number, profile.spot_check_ratio))))
    conn.executemany("INSERT OR IGNORE INTO followups (id, rating_id, hall_id, window_id, clerk_id, score, rated_at, "
                     "opened_at, contact_due, rectify_due, spot_check) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     records)
    return len(records)


def drawn_for_spot_check(number: int, ratio: float) -> bool:
    """Every follow-up whose number lifts ceil(n × ratio): at least ``ratio`` of any first n, spread evenly."""
    return math.ceil(number * ratio - 1e-9) > math.ceil((number - 1) * ratio - 1e-9)


def _due(calendar: Calendar, start: datetime, period: Deadline | None) -> str | None:
    return None if period is None else calendar.due_text(start, period)


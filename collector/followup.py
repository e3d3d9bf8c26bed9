"""差评 follow-up: the states, the steps between them, and the record opened per 差评.

A follow-up record is written once when a 差评 is accepted, with the
profile's deadlines; each step (contact, rectification or explanation, close,
spot check) is an event appended after it. The current state is the last
event's, so nothing is ever updated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hcp.collector.workdays import Calendar
from hcp.config.policy import Deadline, Profile
from hcp.domain import utc_text

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


def followup_records(profile: Profile, calendar: Calendar,
                     ratings: Sequence[tuple[str, str, str, str | None, int, str, int, str]],
                     opened_at: datetime, next_id: int) -> list[tuple]:
    """The follow-up records to open for ``ratings``, accepted 差评 in order of receipt, numbered from ``next_id``.

    Each rating is (rating_id, hall_id, window_id, clerk_id, score, rated_at, clock_synced, received_at) as
    stored; each record is the ``followups`` row: (id, rating_id, hall_id, window_id, clerk_id, score,
    rated_at, opened_at, contact_due, rectify_due, spot_check).
    """
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
    return records


def drawn_for_spot_check(number: int, ratio: float) -> bool:
    """Every follow-up whose number lifts ceil(n × ratio): at least ``ratio`` of any first n, spread evenly."""
    return math.ceil(number * ratio - 1e-9) > math.ceil((number - 1) * ratio - 1e-9)


def _due(calendar: Calendar, start: datetime, period: Deadline | None) -> str | None:
    return None if period is None else calendar.due_text(start, period)


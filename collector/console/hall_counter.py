"""One hall's counts kept between two looks, so a new rating recounts today, not the month.

The store's grouped rows are kept per China day. On each change of the hall's
marker only the days that changed are counted again: today, the days of
ratings received since the last look (a terminal that was offline sends
yesterday's late), and the days of the cases those ratings rate or that
arrived. Receipt times are compared with a margin (:data:`MARGIN`), since a
row may commit a little after a later-stamped one. A lifecycle record
(decision, exclusion, malicious-list entry, link), a rating of several cases
or of a batch, or a new week or month recounts the whole span: they are rare.

Open follow-ups are kept by id and read again only when a follow-up is opened
or takes a step; the overdue count is taken at each look from their next
deadlines (a deadline passes without any record being written).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from hcp.domain import utc_text

#: How far back receipt times are looked at again, for rows that committed after a later-stamped one.
MARGIN = timedelta(minutes=5)
_NEVER = "9999"


def china_day(hour: str) -> str:
    """The China day of a UTC hour 'YYYY-MM-DDTHH': CST is a whole eight hours ahead."""
    return (datetime.fromisoformat(hour + ":00:00+00:00") + timedelta(hours=8)).date().isoformat()


def day_start_utc(day: date) -> str:
    """The stored-text instant at which a China day starts."""
    return utc_text(datetime.fromisoformat(f"{day.isoformat()}T00:00:00+08:00"))


class HallCounter:
    """The grouped rows of one hall per day over [first, today], and its open follow-ups."""

    def __init__(self, hall_id: str) -> None:
        self.hall_id = hall_id
        self.ratings: dict[str, list[tuple]] = {}  # day -> (window, clerk, item, score, default, excluded, listed, n)
        self.cases: dict[str, list[tuple]] = {}  # day -> (window, clerk, item, rated, n)
        self.summaries: dict[str, Any] = {}  # day -> the day's rows added up (kept by hall_figures)
        self.followups: dict[int, tuple] = {}  # open: id -> (window, clerk, next deadline or _NEVER)
        self._dues: dict[tuple, list[str]] = {}  # (window, clerk) -> sorted next deadlines of the open ones
        self._span: tuple[str, str] | None = None
        self._lifecycle: tuple | None = None
        self._since: str | None = None
        self._seen_followup = self._seen_event = -1

    def refresh(self, store: Any, failed_intake_ratable: bool, marker: tuple, first: date, today: date) -> None:
        """Bring the kept rows up to ``marker`` (:meth:`FiguresQueries.figure_marker`) for [first, today]."""
        received, _today_count, case_received, last_followup, last_event, *lifecycle = marker
        span = (first.isoformat(), today.isoformat())
        if self._since is None or span != self._span or lifecycle != self._lifecycle:
            self.count(store, failed_intake_ratable, first, today)
        else:
            days, hours, spread = store.touched_days(self.hall_id, self._since)
            if spread:
                self.count(store, failed_intake_ratable, first, today)
            else:
                rating_days = {d for d in days if span[0] <= d <= span[1]} | {span[1]}
                case_days = {d for d in map(china_day, hours) if span[0] <= d <= span[1]} | {span[1]}
                self.count(store, failed_intake_ratable, first, today, rating_days, case_days)
        self._span, self._lifecycle = span, lifecycle
        newest = min(received or "", case_received or "") or ""
        self._since = utc_text(datetime.fromisoformat(newest) - MARGIN) if newest else ""
        self._follow(store, last_followup or 0, last_event or 0)

    def count(self, store: Any, ratable: bool, first: date, today: date, rating_days: set[str] | None = None,
              case_days: set[str] | None = None) -> None:
        """Count again ``rating_days`` and ``case_days`` (None: every day of [first, today])."""
        if rating_days is None or case_days is None:
            self.summaries = {}
        else:
            for day in rating_days | case_days:
                self.summaries.pop(day, None)
        if rating_days is None:
            self.ratings = defaultdict(list)
            for day, *row in store.figure_ratings(self.hall_id, first.isoformat(), today.isoformat()):
                self.ratings[day].append(tuple(row))
        else:
            for day in rating_days:
                self.ratings[day] = [tuple(row) for _day, *row in store.figure_ratings(self.hall_id, day, day)]
        if case_days is None:
            self.cases = defaultdict(list)
            spans = [(first, today)]
        else:
            for day in case_days:
                self.cases[day] = []
            spans = [(date.fromisoformat(day), date.fromisoformat(day)) for day in case_days]
        for start, end in spans:
            for hour, *row in store.figure_cases(self.hall_id, day_start_utc(start),
                                                 day_start_utc(end + timedelta(days=1)), ratable):
                self.cases[china_day(hour)].append(tuple(row))

    def _follow(self, store: Any, last_followup: int, last_event: int) -> None:
        """Read the follow-ups opened or stepped since the last look."""
        rows = []
        if last_followup != self._seen_followup:
            rows += store.hall_followups(self.hall_id, max(self._seen_followup, 0))
        if last_event != self._seen_event and self._seen_event >= 0:
            stepped = store.stepped_followups(self._seen_event)
            rows += [row for row in store.followup_rows(stepped) if row[0] in self.followups]
        for number, window, clerk, contact_due, rectify_due, contacted, resolved, closed in rows:
            if closed:
                self.followups.pop(number, None)
                continue
            dues = [due for due, done in ((contact_due, contacted), (rectify_due, resolved)) if due and done is None]
            self.followups[number] = (window, clerk or "—", min(dues) if dues else _NEVER)
        if rows or self._seen_followup < 0:
            self._dues = defaultdict(list)
            for window, clerk, due in self.followups.values():
                self._dues[(window, clerk)].append(due)
            for dues in self._dues.values():
                dues.sort()
        self._seen_followup, self._seen_event = last_followup, last_event

    def open_followups(self, at: str) -> dict[tuple, tuple[int, int]]:
        """(window, clerk) -> (open, overdue as of ``at``, stored UTC text)."""
        return {key: (len(dues), bisect_right(dues, at)) for key, dues in self._dues.items()}

    def days(self) -> list[str]:
        """The days kept, in order."""
        return sorted(set(self.ratings) | set(self.cases))

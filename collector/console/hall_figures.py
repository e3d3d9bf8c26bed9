"""A hall's figures for today, this week and this month, and the one poller that keeps them current.

The store counts ratings and cases by group in SQL (``FiguresQueries``); the
figures of each group come from :func:`hcp.collector.stats.tally_row`, the
definitions of ``hcp stats``. Days and weeks are China Standard Time; a week
starts on Monday.

:class:`FigureHub` keeps the newest figures per hall. One poller per process
asks the store every second for each watched hall's change marker (the newest
rating, case and lifecycle record) and recomputes only when it moved; every
open dashboard or board of that hall then gets the same figures through its
queue. A dashboard opened without a poller running computes once and caches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from hcp.collector.console.hall_counter import HallCounter
from hcp.collector.exc import StoreError
from hcp.collector.stats import tally_row
from hcp.config.policy import Profile
from hcp.domain import CST, china_date, utc_text

log = logging.getLogger("hcp.console.figures")

PERIODS = ("today", "week", "month")
PERIOD_NAMES = {"today": "今日", "week": "本周", "month": "本月"}
#: Seconds between two looks at the change markers.
POLL_S = 1.0


@dataclass
class Counts:
    """Counts of one group, added up from the store's grouped rows."""

    levels: Counter = field(default_factory=Counter)
    defaults: int = 0
    excluded: Counter = field(default_factory=Counter)
    completed: int = 0
    rated: int = 0
    open_followups: int = 0
    overdue_followups: int = 0

    def add(self, other: Counts) -> None:
        self.levels.update(other.levels)
        self.excluded.update(other.excluded)
        self.defaults += other.defaults
        self.completed += other.completed
        self.rated += other.rated

    def row(self, profile: Profile) -> dict:
        figures = tally_row(profile, dict(self.levels), defaults=self.defaults, excluded=dict(self.excluded),
                            completed=self.completed, rated=self.rated)
        return {**figures, "open_followups": self.open_followups, "overdue_followups": self.overdue_followups}


def period_starts(today: date) -> dict[str, date]:
    """The first China day of each period that ends today."""
    return {"today": today, "week": today - timedelta(days=today.weekday()), "month": today.replace(day=1)}


@dataclass(frozen=True)
class Names:
    """Display names from the config's ``[web]`` section: hall id, and "hall/window", to a name."""

    halls: dict[str, str] = field(default_factory=dict)
    windows: dict[str, str] = field(default_factory=dict)

    def hall(self, hall_id: str) -> str:
        return self.halls.get(hall_id, hall_id)

    def window(self, hall_id: str, window_id: str) -> str:
        return self.windows.get(f"{hall_id}/{window_id}", f"{window_id} 窗口")


class _Groups:
    """Counts per period, for the hall, each window and each clerk; a period runs from its start to the end."""

    def __init__(self, starts: dict[str, str]) -> None:
        self.starts = starts
        self.hall = {p: Counts() for p in starts}
        self.windows: dict[str, dict[str, Counts]] = defaultdict(lambda: {p: Counts() for p in starts})
        self.clerks: dict[str, dict[str, Counts]] = defaultdict(lambda: {p: Counts() for p in starts})

    def each(self, day: str, window: str, clerk: str | None) -> list[Counts]:
        periods = [p for p, start in self.starts.items() if day >= start]
        found = [self.hall[p] for p in periods] + [self.windows[window][p] for p in periods]
        return found + [self.clerks[clerk or "—"][p] for p in periods]


def count_span(store: Any, profile: Profile, hall_id: str, starts: dict[str, str], last: date) -> _Groups:
    """The counts of ``hall_id`` for periods starting on ``starts`` (ISO days) and ending on ``last``."""
    counter = HallCounter(hall_id)
    counter.count(store, profile.failed_intake_ratable, date.fromisoformat(min(starts.values())), last)
    return _groups(counter, starts)


def _groups(counter: HallCounter, starts: dict[str, str]) -> _Groups:
    groups, first = _Groups(starts), min(starts.values())
    for day in counter.days():
        if day < first:
            continue
        if day not in counter.summaries:
            counter.summaries[day] = _summary(counter.ratings.get(day, ()), counter.cases.get(day, ()))
        for (window, clerk), summary in counter.summaries[day].items():
            for counts in groups.each(day, window, clerk):
                counts.add(summary)
    return groups


def _summary(ratings: list[tuple], cases: list[tuple]) -> dict[tuple, Counts]:
    """One day's rows added up per (window, clerk): what the dashboard groups by."""
    summary: dict[tuple, Counts] = defaultdict(Counts)
    for window, clerk, _item, score, is_default, excluded, listed, count in ratings:
        counts = summary[(window, clerk)]
        if excluded or listed:
            counts.excluded[excluded or "listed"] += count
        else:
            counts.levels[score] += count
            counts.defaults += count if is_default else 0
    for window, clerk, _item, rated, count in cases:
        counts = summary[(window, clerk)]
        counts.completed += count
        counts.rated += count if rated else 0
    return summary


def hall_figures(store: Any, profile: Profile, names: Names, hall_id: str, now: datetime,
                 counter: HallCounter | None = None) -> dict:
    """Today's, this week's and this month's figures of ``hall_id`` as of ``now``, as plain JSON values.

    ``counter`` keeps the hall's rows between calls (:class:`FigureHub`'s); without one, all are read.
    """
    today = china_date(now)
    starts = {p: d.isoformat() for p, d in period_starts(today).items()}
    counter = counter or HallCounter(hall_id)
    counter.refresh(store, profile.failed_intake_ratable, store.figure_marker(hall_id, today.isoformat()),
                    date.fromisoformat(min(starts.values())), today)
    groups = _groups(counter, starts)
    for (window, clerk), (opened, overdue) in counter.open_followups(utc_text(now)).items():
        for counts in [*groups.hall.values(), *groups.windows[window].values(), *groups.clerks[clerk].values()]:
            counts.open_followups += opened
            counts.overdue_followups += overdue
    return _as_json(groups, profile, names, hall_id, now, starts)


def _as_json(groups: _Groups, profile: Profile, names: Names, hall_id: str, now: datetime,
             starts: dict[str, str]) -> dict:
    periods = {}
    for p in PERIODS:
        windows = [{"id": w, "name": names.window(hall_id, w), **counts[p].row(profile)}
                   for w, counts in sorted(groups.windows.items())]
        clerks = [{"id": c, **counts[p].row(profile)} for c, counts in sorted(groups.clerks.items())]
        periods[p] = {"name": PERIOD_NAMES[p], "from": starts[p], "total": groups.hall[p].row(profile),
                      "windows": windows, "clerks": clerks}
    as_of = now.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")
    return {"hall": hall_id, "hall_name": names.hall(hall_id), "as_of": as_of, "periods": periods}


class FigureHub:
    """The newest figures per hall, refreshed by one poller per process when the store's marker moves."""

    def __init__(self, store: Any, profile: Profile, names: Names, *,
                 clock: Callable[[], datetime] | None = None, poll_s: float = POLL_S, lock: Any = None) -> None:
        self.store, self.profile, self.names = store, profile, names
        self.clock = clock or (lambda: datetime.now(CST))
        self.poll_s = poll_s
        # One store connection, read from worker threads: the console's own lock when it shares its store.
        self._lock = lock or threading.RLock()
        self._cache: dict[str, tuple[tuple, dict]] = {}  # hall -> ((marker, minute), figures)
        self._counters: dict[str, HallCounter] = {}
        self._listeners: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self._poller: asyncio.Task | None = None

    def figures(self, hall_id: str) -> dict:
        """The hall's figures now: kept while its marker and the minute stand still (a deadline passes
        without a record, so overdue follow-ups are counted again each minute)."""
        with self._lock:
            now = self.clock()
            key = (self.store.figure_marker(hall_id, china_date(now).isoformat()), now.strftime("%Y%m%d%H%M"))
            cached = self._cache.get(hall_id)
            if cached and cached[0] == key:
                return cached[1]
            started = time.perf_counter()
            counter = self._counters.setdefault(hall_id, HallCounter(hall_id))
            figures = hall_figures(self.store, self.profile, self.names, hall_id, now, counter)
            log.debug("figures of %s counted in %.0f ms", hall_id, (time.perf_counter() - started) * 1000)
            self._cache[hall_id] = (key, figures)
            return figures

    def call(self, read: Callable[..., Any], *args: Any) -> Any:
        """Run one store read under the hub's lock (the console's other figures share the connection)."""
        with self._lock:
            return read(*args)

    def subscribe(self, hall_id: str) -> asyncio.Queue:
        """A queue that receives the hall's figures whenever they change; starts the poller if needed."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        cached = self._cache.get(hall_id)
        if cached:  # a new screen hears at once what the others already have
            queue.put_nowait(cached[1])
        self._listeners[hall_id].add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        return queue

    def unsubscribe(self, hall_id: str, queue: asyncio.Queue) -> None:
        self._listeners[hall_id].discard(queue)

    async def _poll(self) -> None:
        last: dict[str, int] = {}
        while any(self._listeners.values()):
            for hall_id, queues in list(self._listeners.items()):
                if not queues:
                    continue
                try:
                    figures = await asyncio.to_thread(self.figures, hall_id)
                except StoreError:  # a database that does not answer must not end the poller: logged, retried
                    log.warning("figures of %s: the store did not answer; retrying", hall_id, exc_info=True)
                    continue
                if last.get(hall_id) != id(figures):
                    last[hall_id] = id(figures)
                    for queue in list(queues):
                        if queue.full():
                            queue.get_nowait()  # a slow client gets the newest, not a backlog
                        queue.put_nowait(figures)
            await asyncio.sleep(self.poll_s)

"""Working days as data, and the deadlines a profile counts in them.

The calendar is one TOML file per year (``config/calendar/cn-YYYY.toml``):
public holidays, and weekend days that are working days (调休上班). An
operator adds next year's file when the State Council publishes it; a year
with no file counts weekends only, and :meth:`Calendar.covers` lets reports
say so.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path

from hcp.config.policy import Deadline
from hcp.domain import CST, china_date, utc_text
from hcp.exc import ConfigError

log = logging.getLogger("hcp.collector.workdays")


class Calendar:
    """Which China dates are working days."""

    def __init__(self, holidays: Iterable[date] = (), workdays: Iterable[date] = (),
                 years: Iterable[int] = ()) -> None:
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        self._years = frozenset(years)
        self._warned: set[int] = set()
        # (first day, unit, count) -> last day: every 差评 of a day shares its deadlines.
        self._last_day: dict[tuple[date, str, int], date] = {}
        self._due_text: dict[tuple[date, str, int], str] = {}

    @classmethod
    def load(cls, paths: Iterable[Path]) -> Calendar:
        """A calendar from year files; a file names its year, holidays and make-up working days."""
        holidays: set[date] = set()
        workdays: set[date] = set()
        years: set[int] = set()
        for path in paths:
            year, off, on = _read_year(Path(path))
            years.add(year)
            holidays |= off
            workdays |= on
        return cls(holidays, workdays, years)

    @classmethod
    def shipped(cls) -> Calendar:
        """The calendar files shipped in ``config/calendar``."""
        folder = resources.files("hcp.config") / "calendar"
        return cls.load(Path(str(p)) for p in sorted(folder.iterdir(), key=lambda p: p.name)
                        if p.name.endswith(".toml"))

    def covers(self, year: int) -> bool:
        """True when a calendar file for ``year`` was loaded."""
        return year in self._years

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday unless a holiday; a weekend day only when listed as a make-up day."""
        if day.year not in self._years and day.year not in self._warned:
            self._warned.add(day.year)
            log.warning("no calendar file for %d: counting weekends only; add config/calendar/cn-%d.toml",
                        day.year, day.year)
        if day in self._workdays:
            return True
        return day.weekday() < 5 and day not in self._holidays

    def add_working_days(self, start: date, count: int) -> date:
        """The ``count``-th working day after ``start`` (``start`` itself not counted)."""
        day = start
        while count > 0:
            day += timedelta(days=1)
            count -= self.is_working_day(day)
        return day

    def due(self, start: datetime, period: Deadline) -> datetime:
        """The instant a period that starts at ``start`` runs out (late from this instant on)."""
        if period.unit == "hours":
            return start + timedelta(hours=period.count)
        key = (china_date(start), period.unit, period.count)
        last = self._last_day.get(key)
        if last is None:
            first = key[0]
            if period.unit == "natural_days":
                last = first + timedelta(days=period.count)
            else:
                last = self.add_working_days(first, period.count)
            self._last_day[key] = last
        return day_start(last + timedelta(days=1))

    def due_text(self, start: datetime, period: Deadline) -> str:
        """:meth:`due` as hcp stores times (``utc_text``); a day-counted one is formatted once per start day."""
        if period.unit == "hours":
            return utc_text(self.due(start, period))
        key = (china_date(start), period.unit, period.count)
        text = self._due_text.get(key)
        if text is None:
            text = self._due_text[key] = utc_text(self.due(start, period))
        return text


def day_start(day: date) -> datetime:
    """Midnight opening ``day`` in China Standard Time."""
    return datetime.combine(day, time(0), CST)


def _read_year(path: Path) -> tuple[int, set[date], set[date]]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the calendar ({err})") from None
    year = data.get("year")
    if not isinstance(year, int):
        raise ConfigError(f"{path}: key year: expected the year as a number, e.g. year = 2025")
    return year, _dates(path, data, "holidays", year), _dates(path, data, "workdays", year)


def _dates(path: Path, data: dict, key: str, year: int) -> set[date]:
    found = set()
    for text in data.get(key, []):
        try:
            day = date.fromisoformat(str(text))
        except ValueError:
            raise ConfigError(f"{path}: key {key}: {text!r} is not a date YYYY-MM-DD") from None
        if day.year != year:
            raise ConfigError(f"{path}: key {key}: {day} is not in year {year}")
        found.add(day)
    return found

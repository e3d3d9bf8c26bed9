"""The one-rating rules as pure functions: what a rating is, given its cases.

No I/O: the store fetches the device and case rows, asks :func:`judge`, and
then tries to claim the unit keys the verdict names. Whether a key is free
is the database's business (a unique key), never this module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from hcp.config.policy import Profile
from hcp.domain import Intake, Kind, Outcome, china_date

# Plain strings: comparing against enum members costs a descriptor call each,
# and judge() runs once per rating of a 100,000-rating backlog.
_HALL, _SERVICE, _FAILED = Kind.HALL.value, Kind.SERVICE.value, Intake.FAILED.value


class CaseRow(NamedTuple):
    """A stored case record, as the rules see it (the applicant only as a pseudonym).

    A named tuple, not a dataclass: a backlog builds one per rating, and the
    tuple is also the row to insert.
    """

    case_id: str
    hall_id: str
    window_id: str
    item_code: str
    item_name: str
    clerk_id: str
    intake: str
    batch_id: str | None
    applicant_key: str | None
    completed_at: str


class Verdict(NamedTuple):
    """The rules' answer before claims: rejected, pending, or accepted if ``keys`` are free."""

    outcome: Outcome
    reason: str = ""
    keys: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def judge(kind: str, case_ids: Sequence[str], day: date, device_id: str, device_hall: str,
          cases: Mapping[str, CaseRow], profile: Profile) -> Verdict:
    """The verdict on one rating from ``device_id`` (in ``device_hall``) about ``case_ids``."""
    if kind == _HALL and not profile.hall_rating:
        return _rejected(f"kind: hall ratings are off in policy {profile.name}")
    if not case_ids:
        return _rejected("case_ids: empty; a rating must name the case it rates")
    if len(case_ids) == 1 and kind == _SERVICE:
        return _judge_one_service(case_ids[0], day, device_id, device_hall, cases, profile)
    return _judge_cases(kind, case_ids, day, device_id, device_hall, cases, profile)


def _judge_cases(kind: str, case_ids: Sequence[str], day: date, device_id: str, device_hall: str,
                 cases: Mapping[str, CaseRow], profile: Profile) -> Verdict:
    """:func:`judge` for any kind and any number of cases (at least one)."""
    unique = case_ids if len(case_ids) == 1 else tuple(dict.fromkeys(case_ids))
    missing = tuple(c for c in unique if c not in cases)
    if missing:
        return Verdict(Outcome.PENDING, f"waiting for case record(s) {', '.join(missing)}", missing=missing)
    rows = [cases[c] for c in unique]
    problem = (_case_problem(kind, rows, device_id, device_hall, profile) or _early_problem(rows, day, profile)
               or _period_problem(kind, rows, day, profile))
    if problem:
        return _rejected(problem)
    keys = hall_keys(rows, day, profile) if kind == _HALL else service_keys(rows, profile)
    return Verdict(Outcome.ACCEPTED, keys=keys)


def _judge_one_service(case_id: str, day: date, device_id: str, device_hall: str, cases: Mapping[str, CaseRow],
                       profile: Profile) -> Verdict:
    """:func:`judge` for the common rating, one service about one case: the same verdict, less work."""
    row = cases.get(case_id)
    if row is None:
        return Verdict(Outcome.PENDING, f"waiting for case record(s) {case_id}", missing=(case_id,))
    # The two checks of _case_problem and _period_problem for one row, inline:
    # a backlog asks this once per rating. The messages come from those functions.
    if (row.intake == _FAILED and not profile.failed_intake_ratable) or row.hall_id != device_hall:
        return _rejected(_case_problem(_SERVICE, (row,), device_id, device_hall, profile))
    if day < _first_day(row.completed_at, profile.rated_at_tolerance_days):
        return _rejected(_early_problem((row,), day, profile))
    days = profile.default_after_days
    if days is not None and day > _last_day(row.completed_at, days):
        return _rejected(_period_problem(_SERVICE, (row,), day, profile))
    key = f"batch:{row.batch_id}" if profile.batch_rated_once and row.batch_id else f"case:{case_id}"
    return Verdict(Outcome.ACCEPTED, "", (key,), ())


def _case_problem(kind: str, rows: Sequence[CaseRow], device_id: str, device_hall: str,
                  profile: Profile) -> str:
    for row in rows:
        # The hall question rates the hall, not the service, so a refused
        # intake does not bar it.
        if kind == _SERVICE and row.intake == _FAILED and not profile.failed_intake_ratable:
            return f"case {row.case_id}: intake failed, and policy {profile.name} opens no rating for it"
        if row.hall_id != device_hall:
            return (f"case {row.case_id}: handled in hall {row.hall_id}, but device {device_id} "
                    f"stands in hall {device_hall}")
    return ""


def last_rating_day(completed_at: str, profile: Profile) -> date | None:
    """The last China day a case may be rated on before it defaults; None when the profile has no default."""
    if profile.default_after_days is None:
        return None
    return _last_day(completed_at, profile.default_after_days)


@lru_cache(maxsize=65536)
def _last_day(completed_at: str, days: int) -> date:
    # A pure function of two values, asked once per rating: a backlog rates the same cases' days again and again.
    return china_date(datetime.fromisoformat(completed_at)) + timedelta(days=days)


@lru_cache(maxsize=65536)
def _first_day(completed_at: str, tolerance_days: int) -> date:
    """The earliest China day a rating of a case completed at ``completed_at`` may count on."""
    return china_date(datetime.fromisoformat(completed_at)) - timedelta(days=tolerance_days)


def _early_problem(rows: Sequence[CaseRow], day: date, profile: Profile) -> str:
    # A rating cannot be made before its case was completed: a date that says so is a wrong clock or a
    # made-up date (one that would also dodge the once-a-day rule), never taken at its word.
    tolerance = profile.rated_at_tolerance_days
    for row in rows:
        if day < _first_day(row.completed_at, tolerance):
            completed = china_date(datetime.fromisoformat(row.completed_at))
            return (f"rated_at: counts on {day}, but case {row.case_id} was completed on {completed}; a rating "
                    f"cannot precede its case (clock tolerance {tolerance} day(s))")
    return ""


def _period_problem(kind: str, rows: Sequence[CaseRow], day: date, profile: Profile) -> str:
    # A rating made after the period belongs to no one: the case is (or is
    # about to be) given the default level, whichever runs first.
    if kind != _SERVICE or profile.default_after_days is None:
        return ""
    for row in rows:
        last = last_rating_day(row.completed_at, profile)
        if last is not None and day > last:
            return (f"case {row.case_id}: rating period ended on {last} ({profile.default_after_days} natural "
                    "days after completion); the case gets the default rating")
    return ""


def service_keys(rows: Sequence[CaseRow], profile: Profile) -> tuple[str, ...]:
    """One service is rated once; a batch (2+ cases of one item at once) is one service."""
    keys = tuple(f"batch:{r.batch_id}" if profile.batch_rated_once and r.batch_id else f"case:{r.case_id}"
                 for r in rows)
    return keys if len(keys) == 1 else tuple(dict.fromkeys(keys))


def hall_keys(rows: Sequence[CaseRow], day: date, profile: Profile) -> tuple[str, ...]:
    """A person rates a hall once a day; with no person known, once per case."""
    keys = (f"hall:{r.hall_id}:{r.applicant_key}:{day.isoformat()}"
            if profile.hall_once_per_day and r.applicant_key else f"hall-case:{r.case_id}"
            for r in rows)
    return tuple(dict.fromkeys(keys))


def _rejected(reason: str) -> Verdict:
    return Verdict(Outcome.REJECTED, reason)


def case_difference(stored: CaseRow, incoming: CaseRow) -> str:
    """The first field in which two records of one case differ, or ''."""
    for field in ("hall_id", "window_id", "item_code", "item_name", "clerk_id", "intake", "batch_id",
                  "applicant_key", "completed_at"):
        if getattr(stored, field) != getattr(incoming, field):
            # Name the applicant field as the sender knows it, never its value.
            return "applicant_id" if field == "applicant_key" else field
    return ""

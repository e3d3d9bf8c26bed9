"""The storage layer's statistics queries: the rows :mod:`hcp.collector.stats` counts.

Nothing here keeps a total: every figure is computed again from the stored
records. The queries read the rater's pseudonym only to check the malicious
raters' list, and no contact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING

from hcp.domain import CST, Channel, china_date

if TYPE_CHECKING:
    from hcp.collector.store.engine import Engine


class StatsQueries:
    """Reading the records that statistics count, for the :class:`~hcp.collector.store.Store`."""

    _conn: Engine

    def stats_ratings(self, kind: str, first_day: str, last_day: str) -> Iterator[tuple]:
        """Every accepted rating of ``kind`` with its China day in [first_day, last_day] (ISO dates), as
        ``(hall, window, clerk, item, day, score, channel, exclusion kind or None, listed)``.

        Clerk and item come from the rating's (first) case when it has one; ``listed`` is true when a
        case it rates belongs to a person now on the malicious raters' list. Read lazily.
        """
        yield from self._conn.execute(_ratings_sql(self._conn.json_elements("r.case_ids", "j")),
                                      (kind, first_day, last_day))

    def stats_cases(self, first_day: str, last_day: str, failed_intake_ratable: bool) -> Iterator[tuple]:
        """Every ratable case completed on a China day in [first_day, last_day], as
        ``(hall, window, clerk, item, day, rated)``; ``rated``: an accepted rating that is not a default.

        A failed intake counts only when ``failed_intake_ratable``. Read lazily.
        """
        # The China day is computed here, not in SQL: the range is the UTC instants where the days begin
        # and end (stored times are UTC text, so text order is time order).
        start, end = _utc_start(date.fromisoformat(first_day)), _utc_end(date.fromisoformat(last_day))
        sql = _cases_sql(self._conn.json_elements("r.case_ids", "j"))
        for hall, window, clerk, item, completed_at, rated in self._conn.execute(
                sql, (start, end, int(failed_intake_ratable))):
            yield hall, window, clerk, item, china_date(datetime.fromisoformat(completed_at)).isoformat(), rated

    def followup_timeliness(self, now: datetime) -> dict[str, int | None]:
        """差评 follow-ups opened, and how many met, missed or passed each deadline as of ``now``."""
        row = self._conn.execute(_FOLLOWUP_TIMELINESS, {"now": _at(now)}).fetchone()
        return dict(zip(_FOLLOWUP_COLUMNS, row, strict=True))

    def appeal_timeliness(self, now: datetime) -> dict[str, int | None]:
        """Appeals filed, decided and upheld, and how many met, missed or passed the review deadline."""
        row = self._conn.execute(_APPEAL_TIMELINESS, {"now": _at(now)}).fetchone()
        return dict(zip(_APPEAL_COLUMNS, row, strict=True))


def _at(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="microseconds")


_DAY = timedelta(days=1)


def _utc_start(day: date) -> str:
    """The first 19 characters of the stored UTC text of the moment China's ``day`` begins."""
    if day == date.min:
        return ""  # before every stored time
    return datetime.combine(day, time(), CST).astimezone(UTC).isoformat(timespec="seconds")[:19]


def _utc_end(day: date) -> str:
    """The first 19 characters of the stored UTC text of the moment China's ``day`` ends."""
    if day == date.max:
        return "~"  # after every stored time ("~" sorts after digits)
    return _utc_start(day + _DAY)


_LISTED = """(SELECT rater_key FROM malicious_raters m WHERE action = 'add'
               AND id = (SELECT max(id) FROM malicious_raters WHERE rater_key = m.rater_key))"""

@cache
def _ratings_sql(case_ids: str) -> str:
    """The accepted ratings of a kind and days; ``case_ids``: the engine's FROM item of a rating's case ids."""
    return f"""
WITH rc AS (
    SELECT r.rating_id, j.value AS case_id FROM ratings r, {case_ids}
    UNION ALL SELECT rating_id, case_id FROM rating_links)
SELECT r.hall_id, r.window_id, COALESCE(c.clerk_id, r.clerk_id), COALESCE(c.item_code, r.item_code), r.day,
       r.score, r.channel, e.kind,
       EXISTS (SELECT 1 FROM rc JOIN cases x USING (case_id) WHERE rc.rating_id = r.rating_id
               AND x.applicant_key IN {_LISTED})
FROM ratings r JOIN rating_outcomes o USING (rating_id)
LEFT JOIN cases c ON c.case_id = (SELECT case_id FROM rc WHERE rc.rating_id = r.rating_id LIMIT 1)
LEFT JOIN exclusions e ON e.rating_id = r.rating_id
    AND NOT EXISTS (SELECT 1 FROM exclusion_reversals v WHERE v.exclusion_id = e.id)
WHERE o.outcome = 'accepted' AND r.kind = ? AND r.day BETWEEN ? AND ?
"""


@cache
def _cases_sql(case_ids: str) -> str:
    """The ratable cases completed in a UTC range (first 19 characters), each with whether it was rated."""
    return f"""
WITH rated AS (
    SELECT j.value AS case_id FROM ratings r JOIN rating_outcomes o USING (rating_id), {case_ids}
    WHERE o.outcome = 'accepted' AND r.kind = 'service' AND r.channel != '{Channel.SYSTEM_DEFAULT.value}'
    UNION SELECT l.case_id FROM rating_links l JOIN rating_outcomes o USING (rating_id) WHERE o.outcome = 'accepted')
SELECT hall_id, window_id, clerk_id, item_code, completed_at, case_id IN (SELECT case_id FROM rated)
FROM cases WHERE substr(completed_at, 1, 19) >= ? AND substr(completed_at, 1, 19) < ? AND (intake = 'ok' OR ? = 1)
"""


_FOLLOWUP_COLUMNS = ("opened", "contact_deadlines", "contacted_on_time", "contacted_late", "contact_overdue",
                     "rectify_deadlines", "resolved_on_time", "resolved_late", "rectify_overdue", "closed",
                     "spot_checks_due", "spot_checked")
# Comparisons are counted with CASE (PostgreSQL cannot add booleans up); flags are integers 0/1.
_FOLLOWUP_TIMELINESS = """
WITH f AS (
    SELECT contact_due, rectify_due, spot_check,
           (SELECT min(at) FROM followup_events e WHERE e.followup_id = x.id AND action = 'contact') AS contacted,
           (SELECT min(at) FROM followup_events e WHERE e.followup_id = x.id AND action IN ('rectify', 'explain'))
               AS resolved,
           CASE WHEN EXISTS (SELECT 1 FROM followup_events e WHERE e.followup_id = x.id AND action = 'close')
                THEN 1 ELSE 0 END AS closed,
           CASE WHEN EXISTS (SELECT 1 FROM followup_events e WHERE e.followup_id = x.id AND action = 'spot-check')
                THEN 1 ELSE 0 END AS checked
    FROM followups x)
SELECT count(*), count(contact_due), sum(CASE WHEN contacted < contact_due THEN 1 ELSE 0 END),
       sum(CASE WHEN contacted >= contact_due THEN 1 ELSE 0 END),
       sum(CASE WHEN contacted IS NULL AND :now >= contact_due THEN 1 ELSE 0 END),
       count(rectify_due), sum(CASE WHEN resolved < rectify_due THEN 1 ELSE 0 END),
       sum(CASE WHEN resolved >= rectify_due THEN 1 ELSE 0 END),
       sum(CASE WHEN resolved IS NULL AND :now >= rectify_due THEN 1 ELSE 0 END), sum(closed),
       sum(CASE WHEN spot_check = 1 AND closed = 1 THEN 1 ELSE 0 END), sum(checked)
FROM f
"""

_APPEAL_COLUMNS = ("filed", "decided", "upheld", "review_deadlines", "decided_on_time", "decided_late",
                   "review_overdue")
_APPEAL_TIMELINESS = """
SELECT count(*), count(d.id), sum(d.upheld), count(a.review_due),
       sum(CASE WHEN d.decided_at < a.review_due THEN 1 ELSE 0 END),
       sum(CASE WHEN d.decided_at >= a.review_due THEN 1 ELSE 0 END),
       sum(CASE WHEN d.id IS NULL AND :now >= a.review_due THEN 1 ELSE 0 END)
FROM appeals a LEFT JOIN appeal_decisions d ON d.appeal_id = a.id
"""

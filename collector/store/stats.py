"""The storage layer's statistics queries: the rows :mod:`hcp.collector.stats` counts.

Nothing here keeps a total: every figure is computed again from the stored
records. The queries read the rater's pseudonym only to check the malicious
raters' list, and no contact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

from hcp.domain import Channel


class StatsQueries:
    """Reading the records that statistics count, for the :class:`~hcp.collector.store.Store`."""

    _conn: sqlite3.Connection

    def stats_ratings(self, kind: str, first_day: str, last_day: str) -> Iterator[tuple]:
        """Every accepted rating of ``kind`` with its China day in [first_day, last_day] (ISO dates), as
        ``(hall, window, clerk, item, day, score, channel, exclusion kind or None, listed)``.

        Clerk and item come from the rating's (first) case when it has one; ``listed`` is true when a
        case it rates belongs to a person now on the malicious raters' list. Read lazily.
        """
        yield from self._conn.execute(_RATINGS, (kind, first_day, last_day))

    def stats_cases(self, first_day: str, last_day: str, failed_intake_ratable: bool) -> Iterator[tuple]:
        """Every ratable case completed on a China day in [first_day, last_day], as
        ``(hall, window, clerk, item, day, rated)``; ``rated``: an accepted rating that is not a default.

        A failed intake counts only when ``failed_intake_ratable``. Read lazily.
        """
        yield from self._conn.execute(_CASES, (first_day, last_day, failed_intake_ratable))

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


_LISTED = """(SELECT rater_key FROM malicious_raters m WHERE action = 'add'
               AND id = (SELECT max(id) FROM malicious_raters WHERE rater_key = m.rater_key))"""

# sqlite-only: json_each over the TEXT JSON array ratings.case_ids; EXISTS read as 0/1.
_RATINGS = f"""
WITH rc AS (
    SELECT r.rating_id, j.value AS case_id FROM ratings r, json_each(r.case_ids) j
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

# sqlite-only: json_each over ratings.case_ids; date(substr(...), '+8 hours') for the China day;
# the output alias "day" used in WHERE; IN (...) read as 0/1 and added up.
_CASES = f"""
WITH rated AS (
    SELECT j.value AS case_id FROM ratings r JOIN rating_outcomes o USING (rating_id), json_each(r.case_ids) j
    WHERE o.outcome = 'accepted' AND r.kind = 'service' AND r.channel != '{Channel.SYSTEM_DEFAULT.value}'
    UNION SELECT l.case_id FROM rating_links l JOIN rating_outcomes o USING (rating_id) WHERE o.outcome = 'accepted')
SELECT hall_id, window_id, clerk_id, item_code, date(substr(completed_at, 1, 19), '+8 hours') AS day,
       case_id IN (SELECT case_id FROM rated)
FROM cases WHERE day BETWEEN ? AND ? AND (intake = 'ok' OR ?)
"""

_FOLLOWUP_COLUMNS = ("opened", "contact_deadlines", "contacted_on_time", "contacted_late", "contact_overdue",
                     "rectify_deadlines", "resolved_on_time", "resolved_late", "rectify_overdue", "closed",
                     "spot_checks_due", "spot_checked")
# sqlite-only: sum() over comparisons and EXISTS (booleans as 0/1); :now named parameter.
_FOLLOWUP_TIMELINESS = """
WITH f AS (
    SELECT contact_due, rectify_due, spot_check,
           (SELECT min(at) FROM followup_events e WHERE e.followup_id = x.id AND action = 'contact') AS contacted,
           (SELECT min(at) FROM followup_events e WHERE e.followup_id = x.id AND action IN ('rectify', 'explain'))
               AS resolved,
           EXISTS (SELECT 1 FROM followup_events e WHERE e.followup_id = x.id AND action = 'close') AS closed,
           EXISTS (SELECT 1 FROM followup_events e WHERE e.followup_id = x.id AND action = 'spot-check') AS checked
    FROM followups x)
SELECT count(*), count(contact_due), sum(contacted < contact_due), sum(contacted >= contact_due),
       sum(contacted IS NULL AND :now >= contact_due),
       count(rectify_due), sum(resolved < rectify_due), sum(resolved >= rectify_due),
       sum(resolved IS NULL AND :now >= rectify_due), sum(closed), sum(spot_check AND closed), sum(checked)
FROM f
"""

_APPEAL_COLUMNS = ("filed", "decided", "upheld", "review_deadlines", "decided_on_time", "decided_late",
                   "review_overdue")
# sqlite-only: sum() over comparisons (booleans as 0/1) and over appeal_decisions.upheld; :now named parameter.
_APPEAL_TIMELINESS = """
SELECT count(*), count(d.id), sum(d.upheld), count(a.review_due), sum(d.decided_at < a.review_due),
       sum(d.decided_at >= a.review_due), sum(d.id IS NULL AND :now >= a.review_due)
FROM appeals a LEFT JOIN appeal_decisions d ON d.appeal_id = a.id
"""

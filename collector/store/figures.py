"""The storage layer's reads for the console's figures: a hall's dashboard, the big screen, the disclosure.

:class:`FiguresQueries` is a mixin of :class:`~hcp.collector.store.core.Store`.
The counting rules are :mod:`hcp.collector.stats`'s (``hcp stats``): a rating
counts when its current outcome is accepted; it is excluded when an exclusion
names it or a case it rates belongs to a person on the malicious raters' list;
a case is rated when an accepted service rating that is not a default rates it.
Here the rows are grouped and counted in SQL, per hall and span, so a
dashboard reads thousands of groups instead of a month of ratings; the figures
(好评率, satisfaction, …) are computed from these counts by
:func:`hcp.collector.stats.tally_row`, the definitions ``hcp stats`` uses.

Every statement runs on SQLite and PostgreSQL as written, except the two
fragments :func:`_first_case` and :func:`_case_elements` (a JSON column's
elements), which take the engine's dialect. Times are compared as stored text
(UTC RFC 3339) against bounds computed in Python; booleans are summed as
``CASE WHEN``. Nothing here reads a contact, an applicant or a pseudonym beyond
the malicious list's check.
"""

from __future__ import annotations

from typing import Any

from hcp.domain import Channel, Kind

_DEFAULT = Channel.SYSTEM_DEFAULT.value
_SERVICE = Kind.SERVICE.value


def _dialect(conn: Any) -> str:
    # An Engine names its dialect; before the storage layer's engine swap, the Store holds a sqlite3 connection.
    return getattr(conn, "dialect", "sqlite")


def _first_case(dialect: str) -> str:
    """The first element of ``r.case_ids`` (stored JSON text), as ``hcp stats`` joins a rating's case."""
    return "(r.case_ids::jsonb ->> 0)" if dialect == "postgresql" else "json_extract(r.case_ids, '$[0]')"


def _case_elements(dialect: str) -> str:
    """A table of ``r.case_ids``'s elements, one ``value`` column."""
    if dialect == "postgresql":
        return "jsonb_array_elements_text(r.case_ids::jsonb) AS j(value)"
    return "json_each(r.case_ids) AS j"


_OUTCOME = """COALESCE((SELECT d.outcome FROM rating_decisions d WHERE d.rating_id = r.rating_id
                        ORDER BY d.id DESC LIMIT 1), r.ack_outcome)"""

_LISTED_KEYS = """(SELECT m.rater_key FROM malicious_raters m WHERE m.action = 'add'
                   AND m.id = (SELECT max(x.id) FROM malicious_raters x WHERE x.rater_key = m.rater_key))"""


def _ratings_sql(dialect: str, listed: bool) -> str:
    if listed:
        flag = f"""CASE WHEN EXISTS (SELECT 1 FROM {_case_elements(dialect)} JOIN cases x ON x.case_id = j.value
                                      WHERE x.applicant_key IN {_LISTED_KEYS})
                          OR EXISTS (SELECT 1 FROM rating_links l JOIN cases x ON x.case_id = l.case_id
                                     WHERE l.rating_id = r.rating_id AND x.applicant_key IN {_LISTED_KEYS})
                        THEN 1 ELSE 0 END"""
    else:
        flag = "0"  # nobody is on the list: skip the per-rating check
    return f"""
SELECT g.day, g.window_id, g.clerk, g.item, g.score, g.is_default, g.excluded, g.listed, count(*)
FROM (
    SELECT r.day AS day, r.window_id AS window_id, COALESCE(c.clerk_id, r.clerk_id) AS clerk,
           COALESCE(c.item_code, r.item_code) AS item, r.score AS score,
           CASE WHEN r.channel = '{_DEFAULT}' THEN 1 ELSE 0 END AS is_default, e.kind AS excluded, {flag} AS listed
    FROM ratings r
    LEFT JOIN cases c ON c.case_id = COALESCE({_first_case(dialect)},
                                              (SELECT l.case_id FROM rating_links l WHERE l.rating_id = r.rating_id))
    LEFT JOIN exclusions e ON e.rating_id = r.rating_id
        AND NOT EXISTS (SELECT 1 FROM exclusion_reversals v WHERE v.exclusion_id = e.id)
    WHERE r.hall_id = ? AND r.kind = '{_SERVICE}' AND r.day >= ? AND r.day <= ? AND {_OUTCOME} = 'accepted'
) g
GROUP BY g.day, g.window_id, g.clerk, g.item, g.score, g.is_default, g.excluded, g.listed
"""


# A case is rated when an accepted, non-default service rating claimed it: the claim of its case, or of
# its batch when the profile rates a batch once, or a clerk-button rating linked to it.
_CASES = f"""
SELECT g.hour, g.window_id, g.clerk_id, g.item_code, g.rated, count(*)
FROM (
    SELECT substr(c.completed_at, 1, 13) AS hour, c.window_id AS window_id, c.clerk_id AS clerk_id,
           c.item_code AS item_code,
           CASE WHEN EXISTS (
               SELECT 1 FROM rating_claims k JOIN ratings r ON r.rating_id = k.rating_id
               WHERE (k.unit_key = 'case:' || c.case_id OR k.unit_key = 'batch:' || c.batch_id)
                 AND r.kind = '{_SERVICE}' AND r.channel <> '{_DEFAULT}' AND {_OUTCOME} = 'accepted')
             OR EXISTS (
               SELECT 1 FROM rating_links l JOIN ratings r ON r.rating_id = l.rating_id
               WHERE l.case_id = c.case_id AND {_OUTCOME} = 'accepted')
           THEN 1 ELSE 0 END AS rated
    FROM cases c
    WHERE c.hall_id = ? AND c.completed_at >= ? AND c.completed_at < ? AND (c.intake = 'ok' OR ? = 1)
) g
GROUP BY g.hour, g.window_id, g.clerk_id, g.item_code, g.rated
"""

def _followups_sql(dialect: str, where: str) -> str:
    # The clerk as the figures count ratings: the rated case's, else the rating's own.
    return f"""
SELECT f.id, f.window_id, COALESCE(c.clerk_id, f.clerk_id), f.contact_due, f.rectify_due,
       (SELECT min(e.at) FROM followup_events e WHERE e.followup_id = f.id AND e.action = 'contact'),
       (SELECT min(e.at) FROM followup_events e WHERE e.followup_id = f.id AND e.action IN ('rectify', 'explain')),
       CASE WHEN EXISTS (SELECT 1 FROM followup_events e WHERE e.followup_id = f.id AND e.action = 'close')
            THEN 1 ELSE 0 END
FROM followups f JOIN ratings r ON r.rating_id = f.rating_id
LEFT JOIN cases c ON c.case_id = COALESCE({_first_case(dialect)},
                                          (SELECT l.case_id FROM rating_links l WHERE l.rating_id = r.rating_id))
WHERE {where}
"""


def _touched_hours_sql(dialect: str) -> str:
    # The completion hours of new cases, and of the cases new ratings rate (their "rated" may have changed).
    return f"""
SELECT DISTINCT substr(completed_at, 1, 13) FROM cases WHERE hall_id = ? AND received_at > ?
UNION
SELECT DISTINCT substr(c.completed_at, 1, 13) FROM ratings r
JOIN cases c ON c.case_id = COALESCE({_first_case(dialect)},
                                     (SELECT l.case_id FROM rating_links l WHERE l.rating_id = r.rating_id))
WHERE r.hall_id = ? AND r.received_at > ?
"""


def _spread_sql(dialect: str) -> str:
    # New ratings of several cases, or of a case in a batch, rate cases the touched hours may not name.
    return f"""
SELECT count(*) FROM ratings r
LEFT JOIN cases c ON c.case_id = {_first_case(dialect)}
WHERE r.hall_id = ? AND r.received_at > ? AND (r.case_ids LIKE '%,%' OR c.batch_id IS NOT NULL)
"""


_RECTIFICATION = """
SELECT f.hall_id, f.window_id, count(*),
       sum(CASE WHEN EXISTS (SELECT 1 FROM followup_events e WHERE e.followup_id = f.id
                             AND e.action IN ('rectify', 'explain')) THEN 1 ELSE 0 END)
FROM followups f
WHERE f.rated_at >= ? AND f.rated_at < ?
GROUP BY f.hall_id, f.window_id
"""

_MARKER = """
SELECT (SELECT max(received_at) FROM ratings WHERE hall_id = ?),
       (SELECT count(*) FROM ratings WHERE hall_id = ? AND kind = 'service' AND day = ?),
       (SELECT max(received_at) FROM cases WHERE hall_id = ?),
       (SELECT max(id) FROM followups), (SELECT max(id) FROM followup_events),
       (SELECT max(id) FROM rating_decisions), (SELECT max(id) FROM exclusions),
       (SELECT max(id) FROM exclusion_reversals),
       (SELECT max(id) FROM malicious_raters), (SELECT max(linked_at) FROM rating_links)
"""

_COMMENTS = f"""
SELECT r.received_at, r.window_id, r.score, t.text
FROM ratings r JOIN rating_texts t ON t.rating_id = r.rating_id
WHERE r.hall_id = ? AND r.kind = '{_SERVICE}' AND {_OUTCOME} = 'accepted'
  AND NOT EXISTS (SELECT 1 FROM exclusions e WHERE e.rating_id = r.rating_id
                  AND NOT EXISTS (SELECT 1 FROM exclusion_reversals v WHERE v.exclusion_id = e.id))
ORDER BY r.received_at DESC
LIMIT ?
"""


class FiguresQueries:
    """A hall's figures, counted in SQL by group, for the :class:`~hcp.collector.store.Store`."""

    _conn: Any

    def figure_marker(self, hall_id: str, today: str) -> tuple:
        """What changes whenever a figure of ``hall_id`` may have: ``(newest rating's receipt, today's count
        (two messages may carry one receipt time), newest case's receipt, newest follow-up id, newest
        follow-up event id, *the lifecycle's newest records: decision, exclusion, list entry, link)``."""
        return tuple(self._conn.execute(_MARKER, (hall_id, hall_id, today, hall_id)).fetchone())

    def touched_days(self, hall_id: str, since: str) -> tuple[list[str], list[str], bool]:
        """What ratings and cases of ``hall_id`` received after ``since`` change: the China days of their
        ratings, the UTC completion hours of their cases, and whether they rate cases beyond those
        (several cases, a batch), when only a full recount is safe."""
        dialect = _dialect(self._conn)
        days = [day for (day,) in self._conn.execute(
            "SELECT DISTINCT day FROM ratings WHERE hall_id = ? AND received_at > ?", (hall_id, since)).fetchall()]
        hours = [hour for (hour,) in self._conn.execute(_touched_hours_sql(dialect),
                                                        (hall_id, since, hall_id, since)).fetchall()]
        spread = self._conn.execute(_spread_sql(dialect), (hall_id, since)).fetchone()[0] > 0
        return days, hours, spread

    def malicious_listed(self) -> bool:
        """Whether anybody is on the malicious raters' list now."""
        return self._conn.execute(f"SELECT count(*) FROM {_LISTED_KEYS} k", ()).fetchone()[0] > 0

    def figure_ratings(self, hall_id: str, first_day: str, last_day: str) -> list[tuple]:
        """Accepted service ratings of ``hall_id`` on China days [first_day, last_day], grouped:
        ``(day, window, clerk, item, score, is_default, exclusion kind or None, listed, count)``."""
        sql = _ratings_sql(_dialect(self._conn), self.malicious_listed())
        return self._conn.execute(sql, (hall_id, first_day, last_day)).fetchall()

    def figure_cases(self, hall_id: str, start: str, end: str, failed_intake_ratable: bool) -> list[tuple]:
        """Ratable cases of ``hall_id`` completed in [start, end) (stored UTC text), grouped:
        ``(UTC hour 'YYYY-MM-DDTHH', window, clerk, item, rated, count)``."""
        return self._conn.execute(_CASES, (hall_id, start, end, int(failed_intake_ratable))).fetchall()

    def hall_followups(self, hall_id: str, after_id: int) -> list[tuple]:
        """Open follow-ups of ``hall_id`` numbered after ``after_id``: ``(id, window, clerk, contact_due,
        rectify_due, contacted_at, resolved_at, closed)``, for counting the open and the overdue."""
        # Closed ones are left out before their deadlines and steps are looked up: most follow-ups are.
        sql = _followups_sql(_dialect(self._conn), "f.hall_id = ? AND f.id > ? AND NOT EXISTS (SELECT 1 FROM "
                             "followup_events x WHERE x.followup_id = f.id AND x.action = 'close')")
        return self._conn.execute(sql, (hall_id, after_id)).fetchall()

    def followup_rows(self, followup_ids: list[int]) -> list[tuple]:
        """The rows :meth:`hall_followups` gives, of the follow-ups ``followup_ids``."""
        sql = _followups_sql(_dialect(self._conn), "f.id = ?")
        return [row for number in followup_ids for row in self._conn.execute(sql, (number,)).fetchall()]

    def stepped_followups(self, after_event: int) -> list[int]:
        """The follow-ups with an event numbered after ``after_event``."""
        return [number for (number,) in self._conn.execute(
            "SELECT DISTINCT followup_id FROM followup_events WHERE id > ?", (after_event,)).fetchall()]

    def rectification(self, start: str, end: str) -> list[tuple]:
        """差评 follow-ups whose rating was given in [start, end), per hall and window:
        ``(hall, window, opened, rectified or explained)``."""
        return self._conn.execute(_RECTIFICATION, (start, end)).fetchall()

    def recent_comments(self, hall_id: str, limit: int) -> list[tuple]:
        """The newest written comments of counted service ratings at ``hall_id``:
        ``(received_at, window, score, text)``; no rating id, case or person."""
        return self._conn.execute(_COMMENTS, (hall_id, limit)).fetchall()

    def rated_halls(self) -> list[str]:
        """The halls with a registered terminal, in order."""
        rows = self._conn.execute("SELECT DISTINCT hall_id FROM devices ORDER BY hall_id", ()).fetchall()
        return [hall for (hall,) in rows]

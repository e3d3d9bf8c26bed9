"""The console's reads: follow-ups with their rating's context, a rating or case looked up, the appeals by hall.

:class:`ConsoleQueries` is a mixin of :class:`~hcp.collector.store.core.Store`.
Nothing here reads the applicant: the console shows cases, items, windows,
clerks, stars, reasons and the citizen's words, never who rated. Statements
run on both engines; lists are bound through the Engine's ``id_list``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from hcp.collector.followup import FollowUp
from hcp.collector.store.lifecycle import _APPEAL_QUERY, _FOLLOWUP_QUERY, Appeal, _appeal, _followup


@dataclass(frozen=True)
class RatingView:
    """A stored rating as the console shows it (no rater), with its case and current outcome."""

    rating_id: str
    kind: str
    channel: str
    case_ids: tuple[str, ...]
    score: int
    rated_at: str
    received_at: str
    day: str
    reasons: tuple[str, ...]
    hall_id: str
    window_id: str
    clerk_id: str | None
    item_code: str | None
    item_name: str | None
    outcome: str
    outcome_reason: str
    text: str | None


@dataclass(frozen=True)
class CaseView:
    """A case record without its applicant."""

    case_id: str
    hall_id: str
    window_id: str
    item_code: str
    item_name: str
    clerk_id: str
    intake: str
    batch_id: str | None
    completed_at: str


@dataclass(frozen=True)
class ExclusionView:
    """A rating's exclusion and, once reversed, its reversal."""

    id: int
    rating_id: str
    kind: str
    decided_by: str
    decided_at: str
    reason: str
    appeal_id: int | None
    reversed_by: str | None = None
    reversed_at: str | None = None
    reversal_reason: str | None = None

    @property
    def in_force(self) -> bool:
        """Whether the rating is left out of statistics now."""
        return self.reversed_at is None


# The follow-up query of the lifecycle with its computed columns named, for filtering on them.
_QUEUE_QUERY = """
SELECT f.id, f.rating_id, f.hall_id, f.window_id, f.clerk_id, f.score, f.rated_at, f.contact_due, f.rectify_due,
       f.spot_check,
       COALESCE((SELECT state FROM followup_events e WHERE e.followup_id = f.id ORDER BY id DESC LIMIT 1), 'open')
           AS state,
       (SELECT min(at) FROM followup_events e WHERE e.followup_id = f.id AND action = 'contact') AS contacted,
       (SELECT min(at) FROM followup_events e WHERE e.followup_id = f.id AND action IN ('rectify', 'explain'))
           AS resolved
FROM followups f"""

_RATING_VIEW = """
SELECT r.rating_id, r.kind, r.channel, r.case_ids, r.score, r.rated_at, r.received_at, r.day, r.reasons,
       r.hall_id, r.window_id, r.clerk_id, r.item_code, o.outcome, o.reason, t.text
FROM ratings r JOIN rating_outcomes o USING (rating_id) LEFT JOIN rating_texts t USING (rating_id)
"""
_CASE_VIEW = ("SELECT case_id, hall_id, window_id, item_code, item_name, clerk_id, intake, batch_id, completed_at "
              "FROM cases")
_EXCLUSION_VIEW = """
SELECT e.id, e.rating_id, e.kind, e.decided_by, e.decided_at, e.reason, e.appeal_id, v.decided_by, v.decided_at,
       v.reason
FROM exclusions e LEFT JOIN exclusion_reversals v ON v.exclusion_id = e.id
"""


class ConsoleQueries:
    """What the console reads, mixed into the Store."""

    _conn: sqlite3.Connection

    # -- follow-ups -------------------------------------------------------------

    def followups_in_halls(self, halls: Sequence[str] | None) -> list[FollowUp]:
        """The follow-ups of ``halls`` (None: every hall), newest first."""
        if halls is None:
            return [_followup(row) for row in self._conn.execute(_FOLLOWUP_QUERY + " ORDER BY f.id DESC")]
        sub, param = self._conn.id_list(halls)
        return [_followup(row) for row in self._conn.execute(
            _FOLLOWUP_QUERY + " WHERE f.hall_id IN (" + sub + ") ORDER BY f.id DESC", (param,))]

    def followup_queue(self, halls: Sequence[str] | None, states: Sequence[str], *, overdue_at: str | None = None,
                       limit: int = 300) -> tuple[list[FollowUp], int]:
        """(the newest ``limit`` follow-ups of ``halls`` in ``states``, how many there are in all).

        ``halls`` None: every hall. ``overdue_at``: only those with a deadline passed at that instant
        (UTC text) and its step not done.
        """
        state_sql, state_param = self._conn.id_list(states)
        where, params = ["state IN (" + state_sql + ")"], [state_param]
        inner, inner_params = "", []
        if halls is not None:
            sub, param = self._conn.id_list(halls)
            inner, inner_params = " WHERE f.hall_id IN (" + sub + ")", [param]
        if overdue_at is not None:
            where.append("((contact_due IS NOT NULL AND contacted IS NULL AND contact_due <= ?) OR "
                         "(rectify_due IS NOT NULL AND resolved IS NULL AND rectify_due <= ?))")
            params += [overdue_at, overdue_at]
        # One pass: the count of every match comes with each row shown (a window over the filtered rows,
        # taken before the LIMIT), instead of a second query computing every follow-up's state again.
        query = ("WITH q AS (" + _QUEUE_QUERY + inner + ") SELECT *, count(*) OVER () FROM q WHERE "
                 + " AND ".join(where) + " ORDER BY id DESC LIMIT ?")
        rows = self._conn.execute(query, (*inner_params, *params, int(limit))).fetchall()
        total = rows[0][-1] if rows else 0
        return [_followup(row[:-1]) for row in rows], total

    def followup_events(self, followup_id: int) -> list[tuple[str, str, str, str, str]]:
        """(action, state after, actor, at, note) of each step of a follow-up, in order."""
        return self._conn.execute("SELECT action, state, actor, at, note FROM followup_events WHERE followup_id = ? "
                                  "ORDER BY id", (followup_id,)).fetchall()

    def followup_of_rating(self, rating_id: str) -> int | None:
        """The follow-up opened for a rating, or None."""
        row = self._conn.execute("SELECT id FROM followups WHERE rating_id = ?", (rating_id,)).fetchone()
        return None if row is None else row[0]

    # -- ratings and cases ------------------------------------------------------

    def rating_views(self, rating_ids: Sequence[str]) -> dict[str, RatingView]:
        """The ratings of ``rating_ids`` that exist, by id, with their case's item name."""
        if not rating_ids:
            return {}
        sub, param = self._conn.id_list(rating_ids)
        rows = self._conn.execute(_RATING_VIEW + " WHERE r.rating_id IN (" + sub + ")", (param,)).fetchall()
        links = dict(self._conn.execute("SELECT rating_id, case_id FROM rating_links WHERE rating_id IN (" + sub + ")",
                                        (param,)).fetchall())
        cases = [_cases_of(row, links) for row in rows]
        facts = self._case_facts([ids[0] for ids in cases if ids])
        return {row[0]: _rating_view(row, ids, facts.get(ids[0], (None, None)) if ids else (None, None))
                for row, ids in zip(rows, cases, strict=True)}

    def _case_facts(self, case_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """case id -> (item name, clerk id) of the cases that exist."""
        if not case_ids:
            return {}
        sub, param = self._conn.id_list(case_ids)
        return {case_id: (item, clerk) for case_id, item, clerk in self._conn.execute(
            "SELECT case_id, item_name, clerk_id FROM cases WHERE case_id IN (" + sub + ")", (param,))}

    def case_view(self, case_id: str) -> CaseView | None:
        """A case record without its applicant, or None."""
        row = self._conn.execute(_CASE_VIEW + " WHERE case_id = ?", (case_id,)).fetchone()
        return None if row is None else CaseView(*row)

    def ratings_of_case(self, case_id: str, batch_id: str | None) -> list[str]:
        """The rating ids that rated a case: the claims of its case or batch unit, and clerk-button links."""
        keys = [f"case:{case_id}"] + ([f"batch:{batch_id}"] if batch_id else [])
        sub, param = self._conn.id_list(keys)
        found = [row[0] for row in self._conn.execute(
            "SELECT rating_id FROM rating_claims WHERE unit_key IN (" + sub + ")", (param,))]
        found += [row[0] for row in self._conn.execute("SELECT rating_id FROM rating_links WHERE case_id = ?",
                                                       (case_id,))]
        return list(dict.fromkeys(found))

    # -- exclusions and appeals -------------------------------------------------

    def exclusion_view(self, rating_id: str) -> ExclusionView | None:
        """The rating's exclusion with its reversal, if any."""
        row = self._conn.execute(_EXCLUSION_VIEW + " WHERE e.rating_id = ?", (rating_id,)).fetchone()
        return None if row is None else ExclusionView(*row)

    def exclusions_in_halls(self, halls: Sequence[str] | None, limit: int = 300) -> list[tuple[ExclusionView, str]]:
        """(exclusion, hall id of its rating) for ``halls`` (None: every hall), newest first."""
        select = _EXCLUSION_VIEW.replace("SELECT e.id,", "SELECT r.hall_id, e.id,").replace(
            "FROM exclusions e", "FROM exclusions e JOIN ratings r ON r.rating_id = e.rating_id")
        if halls is None:
            rows = self._conn.execute(select + " ORDER BY e.id DESC LIMIT ?", (int(limit),)).fetchall()
        else:
            sub, param = self._conn.id_list(halls)
            rows = self._conn.execute(select + " WHERE r.hall_id IN (" + sub + ") ORDER BY e.id DESC LIMIT ?",
                                      (param, int(limit))).fetchall()
        return [(ExclusionView(*row[1:]), row[0]) for row in rows]

    def appeals_of_rating(self, rating_id: str) -> list[Appeal]:
        """Every appeal of one rating, by number."""
        return [_appeal(row) for row in self._conn.execute(_APPEAL_QUERY + " WHERE a.rating_id = ? ORDER BY a.id",
                                                           (rating_id,))]

    def appeals_in_halls(self, halls: Sequence[str] | None) -> list[tuple[Appeal, str]]:
        """(appeal, hall id of its rating) for ``halls`` (None: every hall), newest first."""
        query = _APPEAL_QUERY.replace("FROM appeals a", "FROM appeals a JOIN ratings r ON r.rating_id = a.rating_id")
        select = query.replace("SELECT a.id,", "SELECT r.hall_id, a.id,")
        if halls is None:
            rows = self._conn.execute(select + " ORDER BY a.id DESC").fetchall()
        else:
            sub, param = self._conn.id_list(halls)
            rows = self._conn.execute(select + " WHERE r.hall_id IN (" + sub + ") ORDER BY a.id DESC",
                                      (param,)).fetchall()
        return [(_appeal(row[1:]), row[0]) for row in rows]


def _cases_of(row: tuple, links: dict[str, str]) -> tuple[str, ...]:
    ids = tuple(json.loads(row[3]))
    return ids or ((links[row[0]],) if row[0] in links else ())


def _rating_view(row: tuple, case_ids: tuple[str, ...], case: tuple[str | None, str | None]) -> RatingView:
    (rating_id, kind, channel, _ids, score, rated_at, received_at, day, reasons, hall, window, clerk, item,
     outcome, reason, text) = row
    item_name, case_clerk = case
    # The case record names the clerk when the terminal's rating does not (a window without a clerk link).
    return RatingView(rating_id, kind, channel, case_ids, score, rated_at, received_at, day,
                      tuple(json.loads(reasons)), hall, window, clerk or case_clerk, item, item_name, outcome, reason,
                      text)

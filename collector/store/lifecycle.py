"""The lifecycle's records: default ratings, follow-ups, appeals, exclusions, the malicious raters' list.

:class:`LifecycleQueries` is a mixin of :class:`~hcp.collector.store.core.Store`:
every SQL statement of ``hcp.collector.lifecycle`` and ``hcp.collector.followup``
lives here, behind methods that take and return plain values. The rules (what
may follow what, deadlines, who may decide) stay in those modules; the
check-then-write of one action runs inside ``Store.unit()``.

Times are passed in as stored text (UTC RFC 3339), as the callers' ``_ts`` writes them. Placeholders are
SQLite's (``?``, ``:name``) throughout, which the Engine rewrites for PostgreSQL: every statement runs on both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hcp.collector.followup import FollowUp, followup_records
from hcp.domain import Channel

if TYPE_CHECKING:
    from hcp.collector.pseudonym import Pseudonymizer
    from hcp.collector.store.engine import Engine
    from hcp.collector.workdays import Calendar
    from hcp.config.policy import Profile

#: What a due case is read as: (case_id, batch_id, hall_id, window_id, item_code, clerk_id, completed_at).
DueCase = tuple[str, str | None, str, str, str, str | None, str]
#: An accepted 差评 as stored: (rating_id, hall_id, window_id, clerk_id, score, rated_at, clock_synced, received_at).
BadRating = tuple[str, str, str, str | None, int, str, int, str]


@dataclass(frozen=True)
class Appeal:
    """An appeal (申诉复核) and its decision, if any."""

    id: int
    rating_id: str
    filed_by: str
    filed_at: str
    evidence: str
    review_due: str | None
    upheld: bool | None
    reviewer: str | None
    decided_at: str | None
    reason: str | None


class LifecycleQueries:
    """The lifecycle's reads and writes, mixed into the Store, which provides the attributes annotated here."""

    _conn: Engine
    _key: bytes
    _pseudonym: Pseudonymizer
    profile: Profile
    calendar: Calendar
    _write_claims: Callable[[Sequence[tuple[str, str]]], None]

    # -- default ratings ------------------------------------------------------

    def unrated_cases(self, completed_before: str, *, after: str = "", limit: int | None = None,
                      failed_ok: bool) -> list[DueCase]:
        """Cases completed before ``completed_before`` whose case unit no rating claims, by case id after ``after``.

        ``failed_ok``: include cases whose intake failed. ``limit``: at most so many (None: all).
        """
        return self._conn.execute(_UNRATED_CASES, {"cutoff": completed_before, "after": after,
                                                   "limit": self._conn.limit(limit),
                                                   "failed_ok": int(failed_ok)}).fetchall()

    def insert_default_ratings(self, ratings: Sequence[tuple], claims: Sequence[tuple[str, str]]) -> None:
        """Store system default ratings and the (unit_key, rating_id) claims that make each happen once."""
        self._conn.executemany(
            "INSERT INTO ratings (rating_id, device_id, seq, kind, channel, case_ids, score, rated_at, clock_synced, "
            "received_at, day, reasons, prompt_id, hall_id, window_id, clerk_id, item_code, ack_outcome, ack_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ratings)
        # The claim is the "exactly once": a second collector, or this one
        # after a restart, finds the unit claimed (or fails on its key).
        self._write_claims(claims)

    # -- follow-ups -----------------------------------------------------------

    def open_followups(self, rating_ids: Sequence[str], opened_at: datetime) -> int:
        """Open a follow-up for each accepted 差评 among ``rating_ids`` (never for a default)."""
        if not rating_ids:
            return 0
        ids, id_param = self._conn.id_list(rating_ids)
        bad = [int(score) for score in self.profile.grades.bad]
        rows = self._conn.execute(
            "SELECT rating_id, hall_id, window_id, clerk_id, score, rated_at, clock_synced, received_at FROM ratings "
            f"WHERE rating_id IN ({ids}) AND channel != ? AND score IN ({', '.join('?' * len(bad)) or 'NULL'}) "
            f"ORDER BY {self._conn.row_order}", (id_param, Channel.SYSTEM_DEFAULT.value, *bad),
        ).fetchall()
        return self.open_followups_for(rows, opened_at)

    def open_followups_for(self, ratings: Sequence[BadRating], opened_at: datetime) -> int:
        """Open a follow-up for each of ``ratings``, accepted 差评 the caller has in hand, in order of receipt.

        The rating path passes the rows it has just written rather than reading them back.
        """
        if not ratings:
            return 0
        # max(id) + 1 is safe: one writer at a time (SQLite's lock; PostgreSQL: Store.batch's advisory lock).
        next_id = self._conn.execute("SELECT coalesce(max(id), 0) FROM followups").fetchone()[0] + 1
        records = followup_records(self.profile, self.calendar, ratings, opened_at, next_id)
        self._conn.executemany("INSERT INTO followups (id, rating_id, hall_id, window_id, clerk_id, score, "
                               "rated_at, opened_at, contact_due, rectify_due, spot_check) VALUES "
                               "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", records)
        return len(records)

    def followups(self) -> list[FollowUp]:
        """Every follow-up with its current state, by id."""
        return [_followup(row) for row in self._conn.execute(_FOLLOWUP_QUERY + " ORDER BY f.id")]

    def followup(self, followup_id: int) -> FollowUp | None:
        """One follow-up with its current state, or None."""
        row = self._conn.execute(_FOLLOWUP_QUERY + " WHERE f.id = ?", (followup_id,)).fetchone()
        return None if row is None else _followup(row)

    def insert_followup_event(self, followup_id: int, action: str, state: str, actor: str, at: str,
                              note: str) -> None:
        """Append a step of a follow-up and the state it leads to."""
        self._conn.execute("INSERT INTO followup_events (followup_id, action, state, actor, at, note) VALUES "
                           "(?, ?, ?, ?, ?, ?)", (followup_id, action, state, actor, at, note))

    def has_followup_contact(self, followup_id: int) -> bool:
        """Whether a contact is kept for the follow-up."""
        return self._conn.execute("SELECT 1 FROM followup_contacts WHERE followup_id = ?",
                                  (followup_id,)).fetchone() is not None

    def insert_followup_contact(self, followup_id: int, sealed: bytes) -> None:
        """Keep the rater's sealed contact for the follow-up."""
        self._conn.execute("INSERT INTO followup_contacts (followup_id, sealed) VALUES (?, ?)",
                           (followup_id, sealed))

    def followup_contact(self, followup_id: int) -> bytes | None:
        """The rater's sealed contact for the follow-up, or None."""
        row = self._conn.execute("SELECT sealed FROM followup_contacts WHERE followup_id = ?",
                                 (followup_id,)).fetchone()
        return None if row is None else row[0]

    # -- appeals --------------------------------------------------------------

    def rating_for_appeal(self, rating_id: str) -> tuple[int, str, str, int, str, str] | None:
        """(score, channel, rated_at, clock_synced, received_at, current outcome) of a rating, or None."""
        return self._conn.execute("SELECT r.score, r.channel, r.rated_at, r.clock_synced, r.received_at, o.outcome "
                                  "FROM ratings r JOIN rating_outcomes o USING (rating_id) WHERE rating_id = ?",
                                  (rating_id,)).fetchone()

    def appeal_waiting(self, rating_id: str) -> bool:
        """Whether an appeal of the rating is waiting for its decision."""
        return self._conn.execute("SELECT 1 FROM appeals a WHERE rating_id = ? AND NOT EXISTS (SELECT 1 FROM "
                                  "appeal_decisions d WHERE d.appeal_id = a.id)", (rating_id,)).fetchone() is not None

    def insert_appeal(self, rating_id: str, filed_by: str, filed_at: str, evidence: str,
                      review_due: str | None) -> int:
        """File an appeal; returns its number."""
        return self._conn.insert_id("INSERT INTO appeals (rating_id, filed_by, filed_at, evidence, review_due) "
                                    "VALUES (?, ?, ?, ?, ?)", (rating_id, filed_by, filed_at, evidence, review_due))

    def insert_appeal_decision(self, appeal_id: int, upheld: bool, reviewer: str, decided_at: str,
                               reason: str) -> None:
        """Record the reviewer's decision on an appeal."""
        self._conn.execute("INSERT INTO appeal_decisions (appeal_id, upheld, reviewer, decided_at, reason) "
                           "VALUES (?, ?, ?, ?, ?)", (appeal_id, int(upheld), reviewer, decided_at, reason))

    def appeal(self, appeal_id: int) -> Appeal | None:
        """One appeal with its decision, or None."""
        row = self._conn.execute(_APPEAL_QUERY + " WHERE a.id = ?", (appeal_id,)).fetchone()
        return None if row is None else _appeal(row)

    def appeals(self) -> list[Appeal]:
        """Every appeal with its decision, by number."""
        return [_appeal(row) for row in self._conn.execute(_APPEAL_QUERY + " ORDER BY a.id")]

    # -- exclusions -----------------------------------------------------------

    def rating_score_and_channel(self, rating_id: str) -> tuple[int, str] | None:
        """(score, channel) of a stored rating, or None."""
        return self._conn.execute("SELECT r.score, r.channel FROM ratings r WHERE rating_id = ?",
                                  (rating_id,)).fetchone()

    def exclusion(self, rating_id: str) -> tuple[str, str, str] | None:
        """(kind, decided_by, decided_at) of the rating's exclusion, or None."""
        return self._conn.execute("SELECT kind, decided_by, decided_at FROM exclusions WHERE rating_id = ?",
                                  (rating_id,)).fetchone()

    def insert_exclusion(self, rating_id: str, kind: str, decided_by: str, decided_at: str, reason: str,
                         appeal_id: int | None) -> None:
        """Leave a rating out of statistics as ``kind``, on its own or by an upheld appeal."""
        self._conn.execute("INSERT INTO exclusions (rating_id, kind, decided_by, decided_at, reason, appeal_id) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (rating_id, kind, decided_by, decided_at, reason, appeal_id))

    def insert_exclusion_reversal(self, exclusion_id: int, rating_id: str, decided_by: str, decided_at: str,
                                  reason: str) -> None:
        """Count an excluded rating again: a new record referencing the exclusion, which stays as it was."""
        self._conn.execute("INSERT INTO exclusion_reversals (exclusion_id, rating_id, decided_by, decided_at, "
                           "reason) VALUES (?, ?, ?, ?, ?)", (exclusion_id, rating_id, decided_by, decided_at, reason))

    def exclusion_state(self, rating_id: str) -> tuple[int, str, str, bool] | None:
        """(exclusion id, kind, decided_at, reversed) of the rating's exclusion, or None."""
        row = self._conn.execute(
            "SELECT e.id, e.kind, e.decided_at, CASE WHEN v.id IS NULL THEN 0 ELSE 1 END FROM exclusions e "
            "LEFT JOIN exclusion_reversals v ON v.exclusion_id = e.id WHERE e.rating_id = ?", (rating_id,)).fetchone()
        return None if row is None else (row[0], row[1], row[2], bool(row[3]))

    # -- the malicious raters' list -------------------------------------------

    def rater_key(self, applicant_id: str) -> str:
        """The collector's pseudonym of a person: how the list names them."""
        key = self._pseudonym(applicant_id)
        assert key is not None
        return key

    def rater_listed(self, rater_key: str) -> bool:
        """Whether the person is on the malicious raters' list now (their last change added them)."""
        row = self._conn.execute("SELECT action FROM malicious_raters WHERE rater_key = ? ORDER BY id DESC LIMIT 1",
                                 (rater_key,)).fetchone()
        return bool(row) and row[0] == "add"

    def insert_malicious_change(self, rater_key: str, action: str, actor: str, at: str, reason: str) -> None:
        """Append an 'add' or 'remove' of a person to the malicious raters' list."""
        self._conn.execute("INSERT INTO malicious_raters (rater_key, action, actor, at, reason) VALUES "
                           "(?, ?, ?, ?, ?)", (rater_key, action, actor, at, reason))

    def malicious_raters(self) -> list[tuple[str, str, str, str]]:
        """(rater key, who, when, why) of each person now on the list, in order of listing."""
        return self._conn.execute(
            "SELECT rater_key, actor, at, reason FROM malicious_raters m WHERE action = 'add' AND id = "
            "(SELECT max(id) FROM malicious_raters WHERE rater_key = m.rater_key) ORDER BY id").fetchall()


_UNRATED_CASES = """
SELECT case_id, batch_id, hall_id, window_id, item_code, clerk_id, completed_at FROM cases c
WHERE completed_at < :cutoff AND case_id > :after AND (intake = 'ok' OR :failed_ok = 1)
  AND NOT EXISTS (SELECT 1 FROM rating_claims k WHERE k.unit_key = 'case:' || c.case_id)
ORDER BY case_id LIMIT :limit
"""

_FOLLOWUP_QUERY = """
SELECT f.id, f.rating_id, f.hall_id, f.window_id, f.clerk_id, f.score, f.rated_at, f.contact_due, f.rectify_due,
       f.spot_check,
       COALESCE((SELECT state FROM followup_events e WHERE e.followup_id = f.id ORDER BY id DESC LIMIT 1), 'open'),
       (SELECT min(at) FROM followup_events e WHERE e.followup_id = f.id AND action = 'contact'),
       (SELECT min(at) FROM followup_events e WHERE e.followup_id = f.id AND action IN ('rectify', 'explain'))
FROM followups f
"""

_APPEAL_QUERY = """
SELECT a.id, a.rating_id, a.filed_by, a.filed_at, a.evidence, a.review_due, d.upheld, d.reviewer, d.decided_at,
       d.reason
FROM appeals a LEFT JOIN appeal_decisions d ON d.appeal_id = a.id
"""


def _followup(row: tuple) -> FollowUp:
    # spot_check is stored as the integer 0 or 1 (on both engines).
    return FollowUp(*row[:9], bool(row[9]), *row[10:])


def _appeal(row: tuple) -> Appeal:
    # upheld is stored as the integer 0 or 1 (on both engines), NULL before the decision.
    return Appeal(*row[:6], None if row[6] is None else bool(row[6]), *row[7:])


"""The SQL of what the collector delivers: the retry outboxes, the scan cursors, the upstream and notifier sources.

:class:`OutboxQueries` is a mixin of :class:`~hcp.collector.store.Store`.
The policy (backoff, order, when to give up) stays in
:mod:`hcp.collector.retry_outbox`; these methods only read and write rows.
Each outbox keeps its own table, as created by ``m005_channels``
(``notifications``, ``upstream_outbox``): an :class:`OutboxTable` names its
columns and final status, so databases written before read and carry on the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcp.collector.store.engine import Engine

PENDING, SENT = "pending", "sent"


@dataclass(frozen=True)
class OutboxTable:
    """Where one outbox lives: its table and key, what a record carries, and the words of its final states."""

    name: str
    key: str
    fields: tuple[str, ...]  # the columns :meth:`OutboxQueries.enqueue_outbox` fills after the key
    given_up: str  # the status of a record given up
    reason: str  # the column a final answer's detail goes to
    sent_at: str  # the column stamped when a record is sent
    given_up_at: str | None  # the column stamped when one is given up; None: none is
    label: str  # how log lines name a record
    sent_level: int = logging.INFO  # the log level of a record sent
    retry_level: int = logging.WARNING  # and of one to be tried again

    @property
    def statuses(self) -> tuple[str, str, str]:
        return PENDING, SENT, self.given_up


NOTIFICATIONS = OutboxTable("notifications", "key", ("kind", "subject"), "failed", "last_error", "sent_at", None,
                            "notification")
# Every rating goes upstream: a line for each one sent would drown the log.
UPSTREAM = OutboxTable("upstream_outbox", "record_id", ("kind", "payload"), "rejected", "reason", "done_at",
                       "done_at", "upstream record", sent_level=logging.DEBUG, retry_level=logging.INFO)


@dataclass(frozen=True)
class OutboxItem:
    """A pending record as read from its table."""

    key: str
    values: dict[str, str]  # the table's fields
    attempts: int
    next_at: str


#: What the upstream presets' formats send of each rated case (upstream_format), in this order.
CASE_DETAILS = ("case_id", "item_code", "item_name", "clerk_id", "completed_at", "dept_code", "handle_item_code",
                "clerk_name", "accepted_at", "promised_days", "area_code", "applicant_type")

_RATING_COLUMNS = ("r.rating_id, r.kind, r.channel, r.score, r.reasons, r.rated_at, r.case_ids, r.item_code, "
                   "r.hall_id, r.window_id, r.clerk_id, t.text")


class OutboxQueries:
    """The outboxes' and scanners' rows; mixed into the Store, which provides ``_conn`` and ``_unit``."""

    _conn: Engine
    _unit: Callable[[], AbstractContextManager[None]]

    # -- the retry outboxes ----------------------------------------------------

    def enqueue_outbox(self, table: OutboxTable, rows: Sequence[tuple], at: str) -> int:
        """Queue ``(key, *fields)`` rows due at ``at``; a key already queued is left as it is. How many were new."""
        t, conn = table, self._conn
        columns = ", ".join((t.key, *t.fields))
        marks = ", ".join("?" * (1 + len(t.fields)))
        with self._unit():
            return conn.executemany_count(f"INSERT INTO {t.name} ({columns}, status, next_at, created_at) "
                                          f"VALUES ({marks}, '{PENDING}', ?, ?) ON CONFLICT DO NOTHING",
                                          [(*row, at, at) for row in rows])

    def pending_outbox_records(self, table: OutboxTable, limit: int, due_by: str | None = None) -> list[OutboxItem]:
        """Pending records in the order queued, at most ``limit`` (-1: all); only those due by ``due_by`` if given."""
        t = table
        when = "" if due_by is None else "AND next_at <= ? "
        # The insertion order breaks ties of created_at.
        rows = self._conn.execute(
            f"SELECT {t.key}, attempts, next_at, {', '.join(t.fields)} FROM {t.name} WHERE status = '{PENDING}' "
            f"{when}ORDER BY created_at, {self._conn.row_order} LIMIT ?",
            (() if due_by is None else (due_by,)) + (self._conn.limit(None if limit < 0 else limit),)).fetchall()
        return [OutboxItem(key, dict(zip(t.fields, rest, strict=True)), attempts, next_at)
                for key, attempts, next_at, *rest in rows]

    def retry_outbox_record_later(self, table: OutboxTable, key: str, attempts: int, error: str,
                                  next_at: str) -> None:
        """Keep a record pending after a failed try: its tries, the error, and when it is due again."""
        t = table
        with self._unit():
            self._conn.execute(f"UPDATE {t.name} SET attempts = ?, last_error = ?, next_at = ? WHERE {t.key} = ?",
                               (attempts, error, next_at, key))

    def finish_outbox_record(self, table: OutboxTable, key: str, status: str, attempts: int, detail: str,
                             at: str) -> None:
        """Give a record its final status (sent or given up) and detail, stamped ``at`` where the table stamps it."""
        t = table
        stamp = t.sent_at if status == SENT else t.given_up_at
        stamped = f", {stamp} = ?" if stamp else ""
        values = (status, attempts, detail, *((at,) if stamp else ()), key)
        with self._unit():
            self._conn.execute(f"UPDATE {t.name} SET status = ?, attempts = ?, {t.reason} = ?{stamped} "
                               f"WHERE {t.key} = ?", values)

    def outbox_statuses(self, table: OutboxTable) -> dict[str, int]:
        """How many records are pending, sent, given up (under the table's own words)."""
        counts = dict.fromkeys(table.statuses, 0)
        counts.update(self._conn.execute(f"SELECT status, count(*) FROM {table.name} GROUP BY 1"))
        return counts

    def given_up_outbox_records(self, table: OutboxTable) -> list[tuple[str, str]]:
        """``(key, reason)`` of every record given up, the earliest first."""
        t = table
        row_order = self._conn.row_order
        order = f"{t.given_up_at}, {row_order}" if t.given_up_at else row_order
        return self._conn.execute(f"SELECT {t.key}, {t.reason} FROM {t.name} WHERE status = ? ORDER BY {order}",
                                  (t.given_up,)).fetchall()

    # -- scan cursors ----------------------------------------------------------

    def read_cursor(self, name: str) -> int:
        """How far the scanner ``name`` has read (0 when it never ran)."""
        row = self._conn.execute("SELECT last FROM channel_cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def move_cursor(self, name: str, last: int) -> None:
        """Record that ``name`` has read up to ``last``; call in the transaction that used what it read."""
        self._conn.execute("INSERT INTO channel_cursors (name, last) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                           "last = excluded.last", (name, last))

    # -- what goes upstream ----------------------------------------------------

    def upstream_ratings_after(self, last: int) -> list[tuple]:
        """``(order, *rating columns, text)`` of the ratings accepted on arrival, stored after ``last``."""
        order = f"r.{self._conn.row_order}"  # the order of receipt: the cursor of upstream-ratings
        return self._conn.execute(
            f"SELECT {order}, {_RATING_COLUMNS} FROM ratings r LEFT JOIN rating_texts t "
            f"USING (rating_id) WHERE {order} > ? AND r.ack_outcome = 'accepted' ORDER BY {order}",
            (last,)).fetchall()

    def upstream_acceptances_after(self, last: int) -> list[tuple[int, str]]:
        """``(decision id, rating id)`` of ratings accepted later (a pending one decided), after ``last``."""
        return self._conn.execute(
            "SELECT d.id, d.rating_id FROM rating_decisions d JOIN ratings r USING (rating_id) "
            "WHERE d.id > ? AND d.outcome = 'accepted' AND r.ack_outcome != 'accepted' ORDER BY d.id",
            (last,)).fetchall()

    def upstream_rating(self, order: int, rating_id: str) -> tuple:
        """``(order, *rating columns, text)`` of one rating, as :meth:`upstream_ratings_after` gives them."""
        return self._conn.execute(
            f"SELECT ?, {_RATING_COLUMNS} FROM ratings r LEFT JOIN rating_texts t USING (rating_id) "
            "WHERE r.rating_id = ?", (order, rating_id)).fetchone()

    def upstream_exclusions_after(self, last: int) -> list[tuple[int, str, str, str, str]]:
        """``(id, rating id, kind, decided_at, reason)`` of the exclusions after ``last``."""
        return self._conn.execute("SELECT id, rating_id, kind, decided_at, reason FROM exclusions WHERE id > ? "
                                  "ORDER BY id", (last,)).fetchall()

    def upstream_appeal_decisions_after(self, last: int) -> list[tuple[int, str, int, str, str]]:
        """``(id, rating id, upheld, decided_at, reason)`` of the appeal decisions after ``last``."""
        return self._conn.execute(
            "SELECT d.id, a.rating_id, d.upheld, d.decided_at, d.reason FROM appeal_decisions d "
            "JOIN appeals a ON a.id = d.appeal_id WHERE d.id > ? ORDER BY d.id", (last,)).fetchall()

    def upstream_case_details(self, rating_id: str, case_ids: list[str]) -> list[dict]:
        """:data:`CASE_DETAILS` of each rated case in ``case_ids`` order (a clerk-button rating's case is its link)."""
        if not case_ids:
            case_ids = [r[0] for r in self._conn.execute("SELECT case_id FROM rating_links WHERE rating_id = ?",
                                                         (rating_id,))]
        marks = ", ".join("?" * len(case_ids))
        rows = self._conn.execute(f"SELECT c.{', '.join(CASE_DETAILS)} FROM cases c LEFT JOIN case_upstream u USING "
                                  f"(case_id) WHERE c.case_id IN ({marks})", case_ids).fetchall()
        order = {case_id: n for n, case_id in enumerate(case_ids)}
        return sorted((dict(zip(CASE_DETAILS, row, strict=True)) for row in rows), key=lambda d: order[d["case_id"]])

    # -- what the notifier sends -----------------------------------------------

    def followups_opened_after(self, last: int) -> list[tuple[int, str]]:
        """``(follow-up id, rating id)`` of every follow-up opened after ``last``."""
        return self._conn.execute("SELECT id, rating_id FROM followups WHERE id > ? ORDER BY id", (last,)).fetchall()

    def unreminded_cases(self, completed_by: str) -> list[tuple[str, str | None, str]]:
        """``(case id, batch id, completed_at)`` of cases with a contact, completed by then, never reminded."""
        return self._conn.execute(_UNREMINDED, (completed_by,)).fetchall()

    def alert_facts(self, rating_id: str) -> tuple[str, str, int, str, str | None] | None:
        """``(hall, window, score, channel, contact due)`` of a rating with a follow-up, or None."""
        return self._conn.execute(
            "SELECT r.hall_id, r.window_id, r.score, r.channel, f.contact_due FROM ratings r JOIN followups f "
            "USING (rating_id) WHERE r.rating_id = ?", (rating_id,)).fetchone()


_UNREMINDED = """
SELECT c.case_id, c.batch_id, c.completed_at FROM case_contacts k JOIN cases c USING (case_id)
WHERE c.completed_at <= ? AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.key = 'reminder:' || c.case_id)
ORDER BY c.completed_at
"""

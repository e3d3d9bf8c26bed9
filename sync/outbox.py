"""The terminal's durable outbox: every rating waits here until the collector acks it.

One SQLite file (WAL, ``synchronous=FULL``): :meth:`Outbox.add` returns only
after COMMIT, so a rating the citizen saw accepted survives a power cut.
Each row keeps the rating's wire JSON, so draining needs no re-encoding;
``seq`` comes from a durable counter that never goes back, even after rows
are deleted or the process restarts, which lets the collector see gaps.
SQLite errors are translated to :class:`OutboxError` at this boundary.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils
import uuid6

from hcp import protocol
from hcp.db import migrate, open_db, transaction
from hcp.domain import Kind, Outcome
from hcp.protocol import AckResult, Rating
from hcp.sync.exc import OutboxError, OutboxFull

#: A case rated on this terminal, and the collector's answer to a prompt's
#: rating, are remembered this long (one rating per service).
RATED_CASE_DAYS = 30
#: A long-running terminal purges old cases and outcomes this often (with the next add).
_PURGE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Draft:
    """A rating as the agent knows it, before the outbox gives it an id and a seq."""

    kind: Kind
    case_ids: tuple[str, ...]
    score: int
    rated_at: datetime
    clock_synced: bool
    prompt_id: str | None = None
    hall_id: str | None = None
    window_id: str | None = None
    clerk_id: str | None = None
    item_code: str | None = None
    reasons: tuple[str, ...] = ()
    boot_id: str | None = None
    uptime_s: float | None = None


@dataclass(frozen=True)
class Pending:
    """One unsent rating as stored: its ids and its wire JSON, ready to splice into a message."""

    rating_id: str
    seq: int
    body: bytes


def m001_outbox(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE ratings (rating_id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, "
               "prompt_id TEXT, rated_at TEXT NOT NULL, body TEXT NOT NULL)")
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute("INSERT INTO counters (name, value) VALUES ('seq', 0)")
    db.execute("CREATE TABLE rated_cases (case_id TEXT PRIMARY KEY, recorded_at TEXT NOT NULL)")
    db.execute("CREATE INDEX rated_cases_recorded_at ON rated_cases (recorded_at)")
    db.execute("CREATE TABLE outcomes (prompt_id TEXT PRIMARY KEY, rating_id TEXT NOT NULL, "
               "outcome TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


MIGRATIONS = [m001_outbox]


class Outbox:
    """The durable queue of ratings not yet acknowledged by the collector.

    Thread-safe: one connection guarded by a lock, so the agent's thread and
    a UI thread may both use it.
    """

    def __init__(self, path: Path | str, max_rows: int = 200_000, *, max_page_count: int | None = None) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self.max_rows = max_rows
        self._lock = threading.RLock()
        self._db: sqlite_utils.Database | None = None
        self._next_purge = 0.0
        with self._sqlite_errors("open"):
            self._db = open_db(path, check_same_thread=False, max_page_count=max_page_count)
            migrate(self._db, MIGRATIONS)
            self._depth = self._count()
            with transaction(self._db) as conn:
                self._purge_old(conn)

    # -- writing --------------------------------------------------------------

    def add(self, draft: Draft) -> Rating:
        """Store one rating durably and return it with its rating_id and seq."""
        return self.add_many([draft])[0]

    def add_many(self, drafts: Iterable[Draft]) -> list[Rating]:
        """Store several ratings in ONE transaction (all or none), e.g. paper forms typed in later."""
        drafts = list(drafts)
        with self._lock:
            if self._depth + len(drafts) > self.max_rows:
                raise OutboxFull(f"outbox {self.path} holds {self._depth} ratings, its limit is {self.max_rows}: "
                                 "new ratings are refused until the collector is reachable")
            with self._sqlite_errors("store a rating"), transaction(self._open_db()) as conn:
                ratings = self._insert(conn, drafts)
            self._depth += len(ratings)
            return ratings

    def _insert(self, conn: sqlite3.Connection, drafts: list[Draft]) -> list[Rating]:
        last = conn.execute("UPDATE counters SET value = value + ? WHERE name = 'seq' RETURNING value",
                            [len(drafts)]).fetchone()[0]
        ratings = [_rating(draft, seq) for seq, draft in enumerate(drafts, start=last - len(drafts) + 1)]
        conn.executemany("INSERT INTO ratings (rating_id, seq, prompt_id, rated_at, body) VALUES (?, ?, ?, ?, ?)",
                         [(r.rating_id, r.seq, r.prompt_id, r.rated_at.isoformat(), protocol.encode(r).decode())
                          for r in ratings])
        now = _now()
        if time.monotonic() >= self._next_purge:
            self._purge_old(conn)
        conn.executemany("INSERT OR REPLACE INTO rated_cases (case_id, recorded_at) VALUES (?, ?)",
                         [(case_id, now) for r in ratings for case_id in r.case_ids])
        return ratings

    def settle(self, results: Iterable[AckResult]) -> int:
        """Delete the rows the collector answered; record outcomes and the ack time; return rows removed."""
        answers = {result.rating_id: result for result in results}
        if not answers:
            return 0
        with self._lock:
            removed = self._delete(answers)
            self._depth -= removed
        return removed

    def _delete(self, answers: dict[str, AckResult]) -> int:
        # The whole batch travels as one JSON parameter, so each step is one
        # statement whatever the batch size (no SQLite variable limit, few
        # round trips from Python). json_extract, not ->>: Pi OS bullseye ships SQLite 3.34.
        batch = json.dumps([[r.rating_id, r.outcome.value, r.reason] for r in answers.values()])
        with self._sqlite_errors("settle acknowledged ratings"), transaction(self._open_db()) as conn:
            now = _now()
            conn.execute("INSERT OR REPLACE INTO outcomes (prompt_id, rating_id, outcome, reason, at) "
                         "SELECT r.prompt_id, r.rating_id, json_extract(a.value, '$[1]'), "
                         "json_extract(a.value, '$[2]'), ? "
                         "FROM json_each(?) AS a JOIN ratings AS r ON r.rating_id = json_extract(a.value, '$[0]') "
                         "WHERE r.prompt_id IS NOT NULL", [now, batch])
            removed = conn.execute("DELETE FROM ratings WHERE rating_id IN "
                                   "(SELECT json_extract(value, '$[0]') FROM json_each(?))", [batch]).rowcount
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_ack_at', ?)", [now])
        return removed

    # -- reading --------------------------------------------------------------

    def pending(self, limit: int, after_seq: int = 0) -> list[Rating]:
        """Unacknowledged ratings with seq > after_seq, in seq order."""
        return [Rating.model_validate_json(row.body) for row in self.pending_raw(limit, after_seq)]

    def pending_raw(self, limit: int, after_seq: int = 0) -> list[Pending]:
        """Like :meth:`pending`, but the stored wire JSON as is: the fast path for draining."""
        rows = self._query("SELECT rating_id, seq, body FROM ratings WHERE seq > ? ORDER BY seq LIMIT ?",
                           [after_seq, limit])
        return [Pending(rating_id, seq, body.encode()) for rating_id, seq, body in rows]

    def depth(self) -> int:
        """How many ratings wait for the collector's ack."""
        return self._depth

    def oldest_rated_at(self) -> datetime | None:
        """When the oldest waiting rating was made, or None when the outbox is empty."""
        rows = self._query("SELECT rated_at FROM ratings ORDER BY seq LIMIT 1", [])
        return datetime.fromisoformat(rows[0][0]) if rows else None

    def was_rated(self, case_id: str) -> bool:
        """Whether this terminal already rated ``case_id`` (within the last 30 days)."""
        return bool(self._query("SELECT 1 FROM rated_cases WHERE case_id = ?", [case_id]))

    def rated_case_ids(self) -> set[str]:
        """Every case rated on this terminal within the last 30 days."""
        return {row[0] for row in self._query("SELECT case_id FROM rated_cases", [])}

    def last_outcome(self, prompt_id: str) -> AckResult | None:
        """The collector's last answer to the rating of ``prompt_id``, if any arrived."""
        rows = self._query("SELECT rating_id, outcome, reason FROM outcomes WHERE prompt_id = ?", [prompt_id])
        if not rows:
            return None
        rating_id, outcome, reason = rows[0]
        return AckResult(rating_id=rating_id, outcome=Outcome(outcome), reason=reason)

    def last_ack_at(self) -> datetime | None:
        """When the collector last acknowledged anything, or None if it never did."""
        rows = self._query("SELECT value FROM meta WHERE key = 'last_ack_at'", [])
        return datetime.fromisoformat(rows[0][0]) if rows else None

    def integrity_ok(self) -> bool:
        """PRAGMA integrity_check says ok (a damaged file answers False, never raises)."""
        try:
            with self._lock:
                return self._open_db().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError:
            return False

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Close the database; safe twice and after a failed __init__."""
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------

    def _open_db(self) -> sqlite_utils.Database:
        if self._db is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._db

    def _query(self, sql: str, params: list[object]) -> list[tuple]:
        with self._lock, self._sqlite_errors("read"):
            return self._open_db().execute(sql, params).fetchall()

    def _count(self) -> int:
        return self._open_db().execute("SELECT count(*) FROM ratings").fetchone()[0]

    def _purge_old(self, conn: sqlite3.Connection) -> None:
        cutoff = (datetime.now(UTC) - timedelta(days=RATED_CASE_DAYS)).isoformat()
        conn.execute("DELETE FROM rated_cases WHERE recorded_at < ?", [cutoff])
        conn.execute("DELETE FROM outcomes WHERE at < ?", [cutoff])
        self._next_purge = time.monotonic() + _PURGE_EVERY_S

    @contextmanager
    def _sqlite_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            self._abandon_transaction()
            raise OutboxError(f"outbox {self.path}: cannot {action}: {err}") from err

    def _abandon_transaction(self) -> None:
        # A failed COMMIT (disk full) leaves the transaction open, and hcp.db's
        # transaction() only rolls back when the block itself raised.
        db = self._db
        if db is not None and db.conn.in_transaction:
            with suppress(sqlite3.Error):  # the original error is the one worth reporting
                db.conn.execute("ROLLBACK")


def _rating(draft: Draft, seq: int) -> Rating:
    return Rating(rating_id=str(uuid6.uuid7()), seq=seq, kind=Kind(draft.kind), case_ids=list(draft.case_ids),
                  score=draft.score, rated_at=draft.rated_at, clock_synced=draft.clock_synced,
                  prompt_id=draft.prompt_id, hall_id=draft.hall_id, window_id=draft.window_id,
                  clerk_id=draft.clerk_id, item_code=draft.item_code, reasons=list(draft.reasons),
                  boot_id=draft.boot_id, uptime_s=draft.uptime_s)


def _now() -> str:
    return datetime.now(UTC).isoformat()

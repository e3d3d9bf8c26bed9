"""The collector's rating store: the one seam between the rules and the database.

Everything that must hold across collectors is a database constraint taken
inside a transaction: a rating id is a primary key (so a resend is stored
once and answered as the first time), and the one-rating rules are the
primary key of ``rating_claims``. Nothing is remembered in the process, so
several collectors may share one database.

Each public write runs in its own transaction, or, inside :meth:`Store.batch`,
in a savepoint of the caller's transaction: the service commits many MQTT
messages at once (group commit) and one bad message rolls back alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from hcp.collector.exc import MessageRefused, NoStore, StoreError, UnknownDevice
from hcp.collector.fleet import placed_at
from hcp.collector.linking import button_moment, window_key
from hcp.collector.pseudonym import Pseudonymizer
from hcp.collector.rules import CaseRow, Verdict, case_difference, judge
from hcp.collector.store.accounts import AccountQueries
from hcp.collector.store.chain import seal
from hcp.collector.store.chain_api import ChainQueries
from hcp.collector.store.channels import ChannelQueries
from hcp.collector.store.console import ConsoleQueries
from hcp.collector.store.engine import Engine, connect
from hcp.collector.store.errors import database_errors
from hcp.collector.store.figures import FiguresQueries
from hcp.collector.store.fleet import FleetQueries
from hcp.collector.store.identities import IdentityQueries
from hcp.collector.store.jobs import JobQueries
from hcp.collector.store.lifecycle import LifecycleQueries
from hcp.collector.store.outboxes import OutboxQueries
from hcp.collector.store.schema import MIGRATIONS
from hcp.collector.store.schema_meta import RecordedPolicy, claim_request, record_policy, recorded_policy
from hcp.collector.store.stats import StatsQueries
from hcp.collector.workdays import Calendar
from hcp.config.policy import Profile
from hcp.db import json_list, migrate
from hcp.domain import Channel, Grade, Kind, Outcome, china_date, now_cst, utc_text
from hcp.fastwire import AnyRating, AnyRatingMessage
from hcp.protocol import IDENT_CHARS, AckResult, CaseRecord, CaseResult, StatusMessage

log = logging.getLogger("hcp.collector.store")

_WINDOW = Channel.WINDOW.value
_ACCEPTED = Outcome.ACCEPTED
_CST_OFFSET = timedelta(hours=8)
_IDENT = re.compile(f"[{IDENT_CHARS}]{{1,64}}")
_CASE_COLUMNS = ("case_id, hall_id, window_id, item_code, item_name, clerk_id, intake, batch_id, "
                 "applicant_key, completed_at")
#: SQLite page cache of the store's connection, in KiB.
_CACHE_KIB = 64 * 1024
#: Rows fetched per query when exporting.
_EXPORT_CHUNK = 1000
#: Rating ids of default ratings start so; terminal rating ids are hex and dashes only.
DEFAULT_PREFIX = "default:"
#: The collector's answer to one rating: (rating_id, outcome, reason).
Answer = tuple[str, str, str]


@dataclass(frozen=True)
class Device:
    """A registered terminal and where it stands, with its last status if any."""

    device_id: str
    hall_id: str
    window_id: str
    registered_at: str
    state: str | None = None
    version: str | None = None
    outbox_depth: int | None = None
    last_seen: str | None = None


@dataclass(frozen=True)
class WindowCount:
    """Accepted ratings at one window by grade."""

    hall_id: str
    window_id: str
    kind: str
    good: int = 0
    neutral: int = 0
    bad: int = 0

    @property
    def total(self) -> int:
        return self.good + self.neutral + self.bad


class Store(LifecycleQueries, ChainQueries, OutboxQueries, IdentityQueries, FleetQueries, StatsQueries,
            ChannelQueries, JobQueries, FiguresQueries, AccountQueries, ConsoleQueries):
    """Ratings, cases and devices in one database (SQLite or PostgreSQL), under one policy profile."""

    def __init__(self, engine: Engine, profile: Profile, key: bytes, *,
                 calendar: Calendar | None = None, heads_file: Path | None = None, create: bool = True) -> None:
        #: The database, through the :class:`~hcp.collector.store.engine.Engine` (SQLite or PostgreSQL):
        #: the layer's statements are written once, in SQLite's placeholder style, for both.
        self._conn = engine
        #: Where signed chain heads are appended, outside the database (``chain.heads_file``).
        self.heads_file = heads_file
        self.profile = profile
        self.calendar = calendar or Calendar.shipped()
        self._key = key
        self._pseudonym = Pseudonymizer(key)
        self._unsigned = False  # this store sealed records no head of its own covers yet
        if self._migrate(create):
            self._unsigned = True  # a migration may seal rows already there (m009_chain_v2)
            self._sign_quietly()

    def _migrate(self, create: bool) -> int:
        """Bring the schema up to date on either engine; how many steps ran.

        Not ``create``: a server database without the collector's schema is refused (NoStore), not made.
        """
        engine = self._conn
        if engine.dialect == "postgresql":
            from hcp.collector.store import pg_schema  # psycopg is loaded only for a server

            with database_errors():
                if not create and not pg_schema.has_schema(engine):  # type: ignore[arg-type]
                    raise NoStore("no collector database here yet (an empty database, without the collector's tables)")
                return pg_schema.migrate_engine(engine)  # type: ignore[arg-type]
        # sqlite-only: the page cache. A backlog's lookups and index inserts hit the same pages
        # again and again; the default 2 MB cache makes them disk reads.
        engine.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        with database_errors():
            return migrate(engine.sqlite, MIGRATIONS)  # type: ignore[attr-defined]

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``: the engine under the store."""
        return self._conn.dialect

    @classmethod
    def open(cls, database: Path | str, profile: Profile, key: bytes, *, check_same_thread: bool = True,
             calendar: Calendar | None = None, heads_file: Path | None = None, create: bool = True) -> Store:
        """A store over the SQLite file or ``postgresql://`` URL ``database``, migrated as needed.

        Raises the collector's DatabaseError when it cannot.
        """
        engine = connect(database, check_same_thread=check_same_thread)
        try:
            return cls(engine, profile, key, calendar=calendar, heads_file=heads_file, create=create)
        except BaseException:
            engine.close()
            raise

    def close(self) -> None:
        """Sign the chain head if it moved, then close the database; safe to call twice."""
        if not self._conn.closed and self._unsigned:
            self._sign_quietly()
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the database records about itself ----------------------------

    def recorded_policy(self) -> RecordedPolicy | None:
        """The policy the database was made under, or None for a database made before it was recorded."""
        return recorded_policy(self._conn)

    def record_policy(self, policy: RecordedPolicy) -> None:
        """Record (or replace) the database's policy, in a transaction of its own."""
        with self._conn.transaction():
            record_policy(self._conn, policy)

    def claim_request(self, digest: str, device_id: str, at: str) -> str | None:
        """Record a registration request as imported; when it already was, return when (and record nothing)."""
        with self._unit():
            return claim_request(self._conn, digest, device_id, at)

    def grant_collector_role(self, role: str) -> None:
        """PostgreSQL: grant the collectors' login ``role`` INSERT and SELECT on records (no UPDATE, DELETE).

        Run as the owner role, after migrating. Refused (StoreError) on SQLite, which has no roles.
        """
        if self.dialect != "postgresql":
            raise StoreError("--grant-to: SQLite has no roles; the file's permissions protect it (mode 0600)")
        from hcp.collector.store import pg_schema

        with database_errors():
            pg_schema.grant_collector(self._conn.connection, role)  # type: ignore[attr-defined]

    # -- transactions -------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around several calls; each call inside is its own savepoint.

        Every commit ends by sealing the new records into the hash chain, so
        no committed record is ever outside it. On PostgreSQL the transaction
        first takes the record writers' advisory lock (``pg_schema.RECORD_WRITE_LOCK``):
        writers commit one at a time, so insertion order is commit order, which
        the chain's sealing by range and the scanners' cursors rely on. The
        engine's errors leave it as :class:`~hcp.collector.exc.DatabaseError`.
        """
        engine = self._conn
        # database_errors(): a driver error raised by the layer's own code (not through the engine) leaves
        # translated too.
        with database_errors(), engine.transaction():
            if engine.dialect == "postgresql":
                from hcp.collector.store.pg_schema import RECORD_WRITE_LOCK

                engine.execute("SELECT pg_advisory_xact_lock(?)", (RECORD_WRITE_LOCK,))
            yield
            sealed = seal(engine)
        self._unsigned = self._unsigned or bool(sealed)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A savepoint inside :meth:`batch`: rolled back alone when the block raises.

        The engine's errors leave it translated: :class:`~hcp.collector.exc.MessageFailed`
        when the block broke a rule, :class:`~hcp.collector.exc.DatabaseUnavailable` (or
        ``DatabaseFull``) when the database failed. Should the rollback to the
        savepoint fail too (SQLite rolled the whole transaction back for a full
        disk, the server went away), the whole transaction is given up and the
        block's own error raised, never "no such savepoint".
        """
        if not self._conn.in_transaction:
            raise StoreError("savepoint outside a transaction: use Store.batch()")
        with database_errors(), self._conn.savepoint():
            yield

    @contextmanager
    def _unit(self) -> Iterator[None]:
        if self._conn.in_transaction:
            with self.savepoint():
                yield
        else:
            with self.batch():
                yield

    #: One unit of work, public: a savepoint inside :meth:`batch`, else a transaction of its own.
    unit = _unit

    # -- devices ------------------------------------------------------------

    def register_device(self, device_id: str, hall_id: str, window_id: str) -> None:
        """Register a terminal, or move it to another hall or window."""
        for name, value in (("device_id", device_id), ("hall_id", hall_id), ("window_id", window_id)):
            if not _IDENT.fullmatch(value):
                raise ValueError(f"{name}: {value!r} is not 1-64 of A-Z a-z 0-9 . _ : -")
        at = _ts(now_cst())
        with self._unit():
            # The event is the chained record; ``devices`` is the current state it adds up to.
            self._conn.execute("INSERT INTO device_events (device_id, action, hall_id, window_id, at) "
                               "VALUES (?, 'register', ?, ?, ?)", (device_id, hall_id, window_id, at))
            self._conn.execute(
                "INSERT INTO devices (device_id, hall_id, window_id, registered_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET hall_id = excluded.hall_id, window_id = excluded.window_id",
                (device_id, hall_id, window_id, at))

    def remove_device(self, device_id: str) -> None:
        """Forget a terminal; its ratings stay. Raises UnknownDevice when not registered."""
        with self._unit():
            if not self._conn.execute("DELETE FROM devices WHERE device_id = ?", (device_id,)).rowcount:
                raise UnknownDevice(f"device {device_id} is not registered")
            self._conn.execute("INSERT INTO device_events (device_id, action, at) VALUES (?, 'remove', ?)",
                               (device_id, _ts(now_cst())))

    def devices(self) -> list[Device]:
        """Every registered terminal with its last status, by id."""
        return [Device(*row) for row in self._conn.execute(_DEVICE_QUERY + " ORDER BY d.device_id")]

    def device(self, device_id: str) -> Device | None:
        """One registered terminal, or None."""
        row = self._conn.execute(_DEVICE_QUERY + " WHERE d.device_id = ?", (device_id,)).fetchone()
        return Device(*row) if row else None

    def record_status(self, device_id: str, status: StatusMessage, received_at: datetime) -> bool:
        """Keep a terminal's last status; False (nothing kept) when it is not registered."""
        with self._unit():
            if self.device(device_id) is None:
                return False
            self._conn.execute(
                "INSERT INTO device_status (device_id, state, version, outbox_depth, oldest_unsent_at, "
                "clock_synced, at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET "
                "state = excluded.state, version = excluded.version, outbox_depth = excluded.outbox_depth, "
                "oldest_unsent_at = excluded.oldest_unsent_at, clock_synced = excluded.clock_synced, "
                "at = excluded.at, last_seen = excluded.last_seen",
                (device_id, status.state, status.version, status.outbox_depth, _ts_or_none(status.oldest_unsent_at),
                 None if status.clock_synced is None else int(status.clock_synced), _ts_or_none(status.at),
                 _ts(received_at)))
            self._record_fleet_status(device_id, status, received_at)
        return True

    # -- cases --------------------------------------------------------------

    def add_cases(self, cases: Sequence[CaseRecord], received_at: datetime) -> list[CaseResult]:
        """Store new case records, refuse edits, and decide ratings that waited for them."""
        with self._unit():
            known = self._cases({c.case_id for c in cases})
            results, new = [], []
            for record in cases:
                row = self._case_row(record)
                result = self._case_result(known.get(record.case_id), row)
                if result.outcome == "stored":
                    known[row.case_id] = row
                    new.append((*row, _ts(received_at)))
                results.append(result)
            self._conn.executemany(f"INSERT INTO cases ({_CASE_COLUMNS}, received_at) VALUES "
                                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new)
            self._add_upstream_details(cases, {row[0] for row in new})
            self._resolve_pending([row[0] for row in new], received_at)
            self._resolve_buttons({(row[1], row[2]) for row in new}, received_at)
        return results

    def _add_upstream_details(self, cases: Sequence[CaseRecord], stored: set[str]) -> None:
        """The details only the upstream formats use, of the cases just stored (docs/upstream.md)."""
        details = [(c.case_id, c.dept_code, c.handle_item_code, c.clerk_name, _ts_or_none(c.accepted_at),
                    c.promised_days, c.area_code, c.applicant_type) for c in cases if c.case_id in stored]
        rows = [row for row in details if any(value is not None for value in row[1:])]
        self._conn.executemany("INSERT OR IGNORE INTO case_upstream (case_id, dept_code, handle_item_code, "
                               "clerk_name, accepted_at, promised_days, area_code, applicant_type) VALUES "
                               "(?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _case_row(self, record: CaseRecord) -> CaseRow:
        return CaseRow(record.case_id, record.hall_id, record.window_id, record.item_code, record.item_name,
                       record.clerk_id, record.intake.value, record.batch_id,
                       self._pseudonym(record.applicant_id), _ts(record.completed_at))

    @staticmethod
    def _case_result(stored: CaseRow | None, row: CaseRow) -> CaseResult:
        if stored is None:
            return CaseResult(case_id=row.case_id, outcome="stored")
        field = case_difference(stored, row)
        if not field:
            return CaseResult(case_id=row.case_id, outcome="unchanged")
        return CaseResult(case_id=row.case_id, outcome="rejected",
                          reason=f"{field}: differs from the stored record of case {row.case_id}; "
                                 "case records are never edited")

    def _cases(self, case_ids: Iterable[str]) -> dict[str, CaseRow]:
        ids, param = self._conn.id_list(case_ids)
        rows = self._conn.execute(f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id IN ({ids})", (param,)).fetchall()
        return dict(zip([row[0] for row in rows], map(CaseRow._make, rows), strict=True))

    # -- ratings ------------------------------------------------------------

    def ingest(self, topic_device_id: str, message: AnyRatingMessage, received_at: datetime) -> list[AckResult]:
        """Store and answer the ratings of one message from the device named in its topic."""
        return [AckResult(rating_id=rating_id, outcome=outcome, reason=reason)
                for rating_id, outcome, reason in self.ingest_answers(topic_device_id, message, received_at)]

    def ingest_answers(self, topic_device_id: str, message: AnyRatingMessage,
                       received_at: datetime) -> list[Answer]:
        """:meth:`ingest`, answering with plain ``(rating_id, outcome, reason)`` tuples: the collector's hot path."""
        with self._unit():
            return _Ingest(self, topic_device_id, message, received_at).run()

    def _answers(self, rating_ids: Iterable[str]) -> dict[str, tuple[str, str, str]]:
        """rating_id → (device_id, first outcome, first reason) for those already stored."""
        ids, param = self._conn.id_list(rating_ids)
        rows = self._conn.execute("SELECT rating_id, device_id, ack_outcome, ack_reason FROM ratings WHERE "
                                  f"rating_id IN ({ids})", (param,))
        return {row[0]: row[1:] for row in rows}

    def _lookups(self, device_id: str, rating_ids: Iterable[str], case_ids: Iterable[str]
                 ) -> tuple[Device | None, dict[str, tuple[str, str, str]], dict[str, CaseRow]]:
        """:meth:`device`, :meth:`_answers` and :meth:`_cases` in one go (a pipeline on PostgreSQL)."""
        rating_sql, rating_param = self._conn.id_list(rating_ids)
        case_sql, case_param = self._conn.id_list(case_ids)
        device_rows, answer_rows, case_rows = self._conn.fetch_all([
            (_DEVICE_QUERY + " WHERE d.device_id = ?", (device_id,)),
            (f"SELECT rating_id, device_id, ack_outcome, ack_reason FROM ratings WHERE rating_id IN ({rating_sql})",
             (rating_param,)),
            (f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id IN ({case_sql})", (case_param,))])
        device = Device(*device_rows[0]) if device_rows else None
        return (device, {row[0]: row[1:] for row in answer_rows},
                {row[0]: CaseRow._make(row) for row in case_rows})

    def _claims(self, keys: Iterable[str]) -> dict[str, str]:
        ids, param = self._conn.id_list(keys)
        rows = self._conn.execute(f"SELECT unit_key, rating_id FROM rating_claims WHERE unit_key IN ({ids})",
                                  (param,))
        return dict(rows.fetchall())

    #: Public names of the two lookups the channels, lifecycle and notifier share:
    #: the stored case records by id, and the rating id holding each claimed unit key.
    cases = _cases
    claims = _claims

    def _write_claims(self, claims: Sequence[tuple[str, str]]) -> None:
        # A plain INSERT, no ON CONFLICT: the verdicts were made on a snapshot,
        # and should another writer have claimed a key since, the unique key
        # fails the whole message, which is then retried on fresh state.
        self._conn.insert_rows("rating_claims", ("unit_key", "rating_id"), claims)

    def _resolve_pending(self, case_ids: Sequence[str], decided_at: datetime) -> None:
        """Decide, in order of receipt, the pending ratings whose cases have all arrived."""
        if not case_ids:
            return
        ids, param = self._conn.id_list(case_ids)
        waiting = self._conn.execute(
            "SELECT r.rating_id, r.kind, r.case_ids, r.day, r.device_id, r.hall_id FROM ratings r "
            f"WHERE r.rating_id IN (SELECT rating_id FROM pending_cases WHERE case_id IN ({ids})) "
            f"ORDER BY r.{self._conn.row_order}", (param,)).fetchall()
        cases = self._cases({c for row in waiting for c in json.loads(row[2])})
        verdicts = [(row[0], judge(row[1], json.loads(row[2]), date.fromisoformat(row[3]), row[4], row[5],
                                   cases, self.profile)) for row in waiting]
        verdicts = [(rid, v) for rid, v in verdicts if v.outcome is not Outcome.PENDING]
        claimer = _Claimer(self._claims({k for _, v in verdicts for k in v.keys}))
        decisions = [(rid, *claimer.decide(rid, v), _ts(decided_at)) for rid, v in verdicts]
        self._write_claims(claimer.new)
        self._conn.executemany("INSERT INTO rating_decisions (rating_id, outcome, reason, decided_at) "
                               "VALUES (?, ?, ?, ?)", decisions)
        self._conn.executemany("DELETE FROM pending_cases WHERE rating_id = ?", [(d[0],) for d in decisions])
        self.open_followups([d[0] for d in decisions if d[1] == Outcome.ACCEPTED], decided_at)

    def _resolve_buttons(self, windows: set[tuple[str, str]], decided_at: datetime) -> None:
        """Link clerk-button ratings that waited for a case at one of ``windows``, oldest first."""
        keys = [window_key(hall, window) for hall, window in windows]
        ids, param = self._conn.id_list(keys)
        waiting = self._conn.execute(
            "SELECT r.rating_id, r.rated_at, r.clock_synced, r.received_at, r.day, r.device_id, r.hall_id, "
            f"r.window_id FROM pending_cases p JOIN ratings r USING (rating_id) WHERE p.case_id IN ({ids}) "
            f"ORDER BY r.{self._conn.row_order}", (param,)).fetchall()
        taken: set[str] = set()
        for rating_id, rated_at, synced, received, day, device_id, hall_id, window_id in waiting:
            moment = button_moment(datetime.fromisoformat(rated_at), bool(synced), datetime.fromisoformat(received))
            case_id = self.nearest_unrated_case(hall_id, window_id, moment, self.profile.button_link_minutes,
                                                taken)
            if case_id is None:
                continue
            taken.add(case_id)
            verdict = judge("service", (case_id,), date.fromisoformat(day), device_id, hall_id,
                            self._cases([case_id]), self.profile)
            claimer = _Claimer(self._claims(verdict.keys))
            outcome, reason = claimer.decide(rating_id, verdict)
            self._write_claims(claimer.new)
            self._conn.execute("INSERT INTO rating_links (rating_id, case_id, linked_at) VALUES (?, ?, ?)",
                               (rating_id, case_id, _ts(decided_at)))
            self._conn.execute("INSERT INTO rating_decisions (rating_id, outcome, reason, decided_at) "
                               "VALUES (?, ?, ?, ?)", (rating_id, outcome, f"clerk button prompt: linked to case "
                               f"{case_id}" + (f"; {reason}" if reason else ""), _ts(decided_at)))
            self._conn.execute("DELETE FROM pending_cases WHERE rating_id = ?", (rating_id,))
            if outcome == Outcome.ACCEPTED:
                self.open_followups([rating_id], decided_at)

    # -- reading ------------------------------------------------------------

    def outcome(self, rating_id: str) -> tuple[Outcome, str] | None:
        """The current outcome and reason of a stored rating, or None."""
        row = self._conn.execute("SELECT outcome, reason FROM rating_outcomes WHERE rating_id = ?",
                                 (rating_id,)).fetchone()
        return (Outcome(row[0]), row[1]) if row else None

    def export(self) -> Iterator[dict]:
        """Every stored rating in order of receipt, with its outcome and case records.

        The rater's identity (applicant id or pseudonym) is never part of it.
        """
        last = 0
        sql = _export_sql(self._conn.row_order)
        while True:
            rows = [(row[0], _export_record(row[1:])) for row in self._conn.execute(sql, (last, _EXPORT_CHUNK))]
            if not rows:
                return
            cases = self._cases({c for _order, record in rows for c in _linked(record)})
            for _order, record in rows:
                record["cases"] = [_public_case(cases[c]) for c in _linked(record) if c in cases]
                yield record
            last = rows[-1][0]

    def window_counts(self) -> list[WindowCount]:
        """Accepted ratings per hall, window and kind, by grade under the profile."""
        rows = self._conn.execute(
            "SELECT r.hall_id, r.window_id, r.kind, r.score, count(*) FROM ratings r JOIN rating_outcomes o "
            "USING (rating_id) WHERE o.outcome = 'accepted' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3")
        counts: dict[tuple[str, str, str], dict[str, int]] = {}
        for hall_id, window_id, kind, score, n in rows:
            grades = counts.setdefault((hall_id, window_id, kind), {g.value: 0 for g in Grade})
            grades[self.profile.grade(score).value] += n
        return [WindowCount(*where, **grades) for where, grades in counts.items()]

    def totals(self) -> dict[str, int]:
        """How many stored ratings have each current outcome, and cases and devices."""
        totals = {o.value: 0 for o in Outcome}
        totals.update(self._conn.execute("SELECT outcome, count(*) FROM rating_outcomes GROUP BY 1").fetchall())
        totals["ratings"] = sum(totals[o.value] for o in Outcome)
        totals["cases"] = self._conn.execute("SELECT count(*) FROM cases").fetchone()[0]
        totals["devices"] = self._conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        return totals


class _Claimer:
    """Decides accepted-or-duplicate in order, against stored claims and earlier ones in this batch."""

    def __init__(self, taken: dict[str, str]) -> None:
        self.taken = taken
        self.new: list[tuple[str, str]] = []

    def decide(self, rating_id: str, verdict: Verdict) -> tuple[Outcome, str]:
        outcome, reason, keys, _missing = verdict
        if outcome is not _ACCEPTED:
            return outcome, reason
        taken = self.taken
        for key in keys:
            holder = taken.get(key)
            if holder is None:
                continue
            if holder.startswith(DEFAULT_PREFIX):
                return Outcome.REJECTED, (f"{_describe(key)} was already given the default rating after its "
                                          "rating period ended; a later rating is not accepted")
            # Claim nothing: a duplicate must not block a unit it did not win.
            return Outcome.DUPLICATE, f"{_describe(key)} already rated by rating {holder}"
        for key in keys:
            taken[key] = rating_id
            self.new.append((key, rating_id))
        return _ACCEPTED, reason


class _Ingest:
    """One rating message, answered with bulk lookups and bulk writes."""

    def __init__(self, store: Store, topic_device_id: str, message: AnyRatingMessage,
                 received_at: datetime) -> None:
        self.store = store
        self.device_id = topic_device_id
        self.message = message
        self.received_at = received_at
        self.received = _ts(received_at)
        #: A synced rating dated after this is not taken at its word (docs/protocol.md, "Dates").
        self.latest = received_at + timedelta(days=store.profile.rated_at_tolerance_days)
        self.links: dict[str, str] = {}  # clerk-button rating id -> the case linked to it

    def run(self) -> list[Answer]:
        ratings = self.message.ratings
        store = self.store
        unique, conflicts = _first_copies(ratings)
        # The device, the answers already given and the cases named: read together (one round trip on
        # PostgreSQL); the cases a resent rating names are read too, which costs nothing.
        device, seen, cases = store._lookups(self.device_id, unique, {c for r in unique.values() for c in r.case_ids})
        identity = self._identity_problem(device)
        if identity:
            raise MessageRefused(identity)
        assert device is not None
        fresh = [r for r in unique.values() if r.rating_id not in seen] if seen else list(unique.values())
        self.links = self._link_buttons(fresh, device)
        if self.links:
            cases.update(store._cases(set(self.links.values()) - set(cases)))
        judged = {r.rating_id: self._judge(r, device, cases, conflicts) for r in fresh}
        claimer = _Claimer(store._claims({k for j in judged.values() for k in j[1].keys}))
        answers: dict[str, Answer] = {}
        rows, pending = [], []
        received, device_id, hall_id, window_id = self.received, self.device_id, device.hall_id, device.window_id
        for rating_id, rating in unique.items():
            if rating_id in seen:
                answers[rating_id] = self._again(rating_id, *seen[rating_id])
                continue
            rated, verdict, day = judged[rating_id]
            outcome, reason = claimer.decide(rating_id, verdict)
            answers[rating_id] = (rating_id, outcome, reason)
            if not rated:
                continue  # a value the store cannot hold: answered rejected, nothing stored
            # Plain str and int, not the enum and bool: sqlite3 binds a subclass through its adapter
            # lookup, two failed attribute lookups that cost as much as the rest of the row.
            # Case ids need no JSON escaping (the protocol allows A-Z a-z 0-9 . _ : - only); reasons may.
            rows.append((rating_id, device_id, rating.seq, str(rating.kind), _WINDOW,
                         '["' + '","'.join(rating.case_ids) + '"]' if rating.case_ids else "[]",
                         rating.score, rated, int(rating.clock_synced), received,
                         day, json_list(rating.reasons) if rating.reasons else "[]",
                         rating.prompt_id, hall_id,
                         window_id, rating.clerk_id, rating.item_code, str(outcome), reason))
            if verdict.missing:
                pending += [(case_id, rating_id) for case_id in verdict.missing]
        self._write(rows, claimer.new, pending)
        # Every copy of a rating id is answered, each with the one answer the id got.
        return [answers[r.rating_id] for r in ratings]

    def _judge(self, rating: AnyRating, device: Device, cases: dict[str, CaseRow],
               conflicts: set[str]) -> tuple[str, Verdict, str]:
        """(rated_at as stored, verdict, China day) of one rating; rated_at '' when the rating cannot be stored.

        One rating's failure is that rating's answer: it must never leave the
        other ratings of its message unanswered.
        """
        rating_id = rating.rating_id
        try:
            rated, day = utc_text(rating.rated_at), self._day(rating)
            if rating_id in conflicts:
                return rated, Verdict(Outcome.REJECTED, f"rating_id {rating_id}: sent more than once in one message "
                                                        "with different content; no copy counts"), day.isoformat()
            return rated, self._verdict(rating, day, device, cases), day.isoformat()
        except (OverflowError, ValueError) as err:
            return "", Verdict(Outcome.REJECTED, f"rating {rating_id}: a value is out of range ({err})"), ""

    def _link_buttons(self, ratings: Sequence[AnyRating], device: Device | None) -> dict[str, str]:
        """rating_id → case_id for clerk-button ratings (no case id) that have a case to link to now."""
        links: dict[str, str] = {}
        if device is None:
            return links
        for rating in ratings:
            if rating.case_ids or rating.kind != Kind.SERVICE:
                continue
            moment = button_moment(rating.rated_at, rating.clock_synced, self.received_at)
            case_id = self.store.nearest_unrated_case(device.hall_id, device.window_id, moment,
                                                      self.store.profile.button_link_minutes, set(links.values()))
            if case_id is not None:
                links[rating.rating_id] = case_id
        return links

    def _identity_problem(self, device: Device | None) -> str:
        if self.message.device_id != self.device_id:
            return f"device_id {self.message.device_id} does not match the topic's {self.device_id}"
        if device is None:
            return f"device {self.device_id} is not registered with this collector"
        return ""

    def _again(self, rating_id: str, device_id: str, outcome: str, reason: str) -> Answer:
        if device_id != self.device_id:
            return rating_id, Outcome.REJECTED, f"rating_id {rating_id} was already sent by another device"
        return rating_id, outcome, reason

    def _verdict(self, rating: AnyRating, day: date, device: Device, cases: dict[str, CaseRow]) -> Verdict:
        if rating.clock_synced and rating.rated_at > self.latest:
            return Verdict(Outcome.REJECTED, f"rated_at: {rating.rated_at.isoformat()} is more than "
                           f"{self.store.profile.rated_at_tolerance_days} day(s) after the collector's clock "
                           f"({self.received_at.isoformat()}); a rating cannot be made in the future")
        if rating.hall_id is not None and rating.hall_id != device.hall_id:
            return Verdict(Outcome.REJECTED, f"hall_id {rating.hall_id} does not match device {device.device_id}'s "
                                             f"registration in hall {device.hall_id}")
        if rating.window_id is not None and rating.window_id != device.window_id:
            return Verdict(Outcome.REJECTED, f"window_id {rating.window_id} does not match device "
                                             f"{device.device_id}'s registration at window {device.window_id}")
        if rating.kind == Kind.SERVICE and not rating.case_ids:
            return self._button_verdict(rating, day, device, cases)
        return judge(rating.kind, rating.case_ids, day, device.device_id, device.hall_id,
                     cases, self.store.profile)

    def _button_verdict(self, rating: AnyRating, day: date, device: Device, cases: dict[str, CaseRow]) -> Verdict:
        minutes = self.store.profile.button_link_minutes
        case_id = self.links.get(rating.rating_id)
        if case_id is None:
            return Verdict(Outcome.PENDING, f"clerk button prompt: waiting for a case completed at window "
                           f"{device.window_id} within {minutes} minutes",
                           missing=(window_key(device.hall_id, device.window_id),))
        verdict = judge(rating.kind, (case_id,), day, device.device_id, device.hall_id, cases, self.store.profile)
        return verdict._replace(reason=f"clerk button prompt: linked to case {case_id}, the unrated case "
                                       f"completed at window {device.window_id} closest in time"
                                       + (f"; {verdict.reason}" if verdict.reason else ""))

    def _day(self, rating: AnyRating) -> date:
        # An unsynced terminal clock may be years off: place the rating by the
        # collector's clock and the terminal's uptime (hcp.collector.fleet).
        if rating.clock_synced:
            moment = rating.rated_at
            # Most terminals send China time: its date is the China date, with no conversion.
            return moment.date() if moment.utcoffset() == _CST_OFFSET else china_date(moment)
        if not hasattr(self, "_clock_ref"):
            self._clock_ref = self.store.clock_reference(self.device_id)
        return china_date(placed_at(rating, self._clock_ref, self.received_at))

    def _write(self, rows: list[tuple], claims: list[tuple[str, str]], pending: list[tuple[str, str]]) -> None:
        conn = self.store._conn
        # One pipeline: on PostgreSQL the inserts go out together, answered in one round trip.
        with conn.pipeline():
            conn.insert_rows("ratings", _RATING_COLUMNS, rows)
            # Empty lists are the common case of a message: skip their statements.
            if claims:
                self.store._write_claims(claims)
            if pending:
                conn.insert_rows("pending_cases", ("case_id", "rating_id"), pending)
        # Only an accepted 差评 opens a follow-up; the rows just written say which, no need to read them back.
        bad = frozenset(self.store.profile.grades.bad)
        self.store.open_followups_for([(row[0], row[13], row[14], row[15], row[6], row[7], row[8], row[9])
                                       for row in rows if row[6] in bad and row[17] == Outcome.ACCEPTED],
                                      self.received_at)
        if self.links:
            stored = {row[0] for row in rows}
            conn.executemany("INSERT INTO rating_links (rating_id, case_id, linked_at) VALUES (?, ?, ?)",
                             [(rid, case_id, self.received) for rid, case_id in self.links.items() if rid in stored])


_RATING_COLUMNS = ("rating_id", "device_id", "seq", "kind", "channel", "case_ids", "score", "rated_at", "clock_synced",
                   "received_at", "day", "reasons", "prompt_id", "hall_id", "window_id", "clerk_id", "item_code",
                   "ack_outcome", "ack_reason")

_DEVICE_QUERY = ("SELECT d.device_id, d.hall_id, d.window_id, d.registered_at, s.state, s.version, s.outbox_depth, "
                 "s.last_seen FROM devices d LEFT JOIN device_status s USING (device_id)")

#: The fields of an exported rating, in order: ratings (r.), outcome (o.), link (l.).
_EXPORT_FIELDS = ("rating_id", "device_id", "seq", "kind", "channel", "case_ids", "score", "rated_at", "clock_synced",
                  "received_at", "day", "reasons", "prompt_id", "hall_id", "window_id", "clerk_id", "item_code",
                  "outcome", "reason", "decided_at", "ack_outcome", "ack_reason", "linked_case_id")
_EXPORT_COLUMNS = ", ".join(f"o.{f}" if f in ("outcome", "reason", "decided_at") else
                            "l.case_id" if f == "linked_case_id" else f"r.{f}" for f in _EXPORT_FIELDS)


def _export_sql(order: str) -> str:
    return (f"SELECT r.{order}, {_EXPORT_COLUMNS} FROM ratings r JOIN rating_outcomes o USING (rating_id) "
            f"LEFT JOIN rating_links l USING (rating_id) WHERE r.{order} > ? ORDER BY r.{order} LIMIT ?")


def _export_record(row: tuple) -> dict:
    record = dict(zip(_EXPORT_FIELDS, row, strict=True))
    record["case_ids"] = json.loads(record["case_ids"])
    record["reasons"] = json.loads(record["reasons"])
    record["clock_synced"] = bool(record["clock_synced"])
    return record


def _first_copies(ratings: Sequence[AnyRating]) -> tuple[dict[str, AnyRating], set[str]]:
    """The first copy of each rating id in message order, and the ids whose copies differ."""
    unique: dict[str, AnyRating] = {}
    conflicts: set[str] = set()
    for rating in ratings:
        kept = unique.setdefault(rating.rating_id, rating)
        if kept is not rating and kept != rating:
            conflicts.add(rating.rating_id)
    return unique, conflicts


def _linked(record: dict) -> list[str]:
    """The case ids a rating named, or the one the collector linked a clerk-button rating to."""
    return record["case_ids"] or ([record["linked_case_id"]] if record.get("linked_case_id") else [])


def _public_case(row: CaseRow) -> dict:
    """A case record as it may leave the store: without the rater's pseudonym."""
    return {"case_id": row.case_id, "hall_id": row.hall_id, "window_id": row.window_id, "item_code": row.item_code,
            "item_name": row.item_name, "clerk_id": row.clerk_id, "intake": row.intake, "batch_id": row.batch_id,
            "completed_at": row.completed_at}


def _describe(key: str) -> str:
    # A hall key holds the rater's pseudonym, which must not leave the store.
    kind, _, rest = key.partition(":")
    if kind == "hall":
        hall_id, day = rest.split(":")[0], rest.split(":")[-1]
        return f"hall {hall_id} on {day} by the same person"
    return f"{kind} {rest}"


def _ts(moment: datetime) -> str:
    """Stored times: UTC RFC 3339 with microseconds, so text order is time order."""
    if moment.tzinfo is None:
        raise StoreError("naive datetime: stored times must be aware")
    return utc_text(moment)


def _ts_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else _ts(moment)

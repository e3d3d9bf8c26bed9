"""Background work that several collectors on one database run once: job locks and claimed work rows.

:class:`JobQueries` is a mixin of :class:`~hcp.collector.store.Store`. Every
collector process runs the same timers (the default job, reminders and alerts,
upstream forwarding, chain head signing, retention); the database, never a
home-made leader election, makes each piece of work happen once:

* :meth:`JobQueries.exclusive` wraps one run of a job in a transaction. On
  PostgreSQL it takes ``pg_try_advisory_xact_lock`` on the job's key inside
  that transaction and tells the caller to skip the run when another
  collector holds it; the lock ends with the transaction, so a collector that
  dies mid-run frees it. On SQLite the transaction is ``BEGIN IMMEDIATE``:
  one writer at a time, so a second collector's run starts after the first
  committed and finds nothing left to do by the job's own unique keys
  (``rating_claims`` for defaults, the outbox keys for reminders, alerts and
  upstream records, the chain's sequence for heads).
* :meth:`JobQueries.claim_outbox_records` takes due rows of a retry outbox
  for one sender: their ``next_at`` moves to the end of a lease in the same
  transaction that read them (on PostgreSQL ``SELECT … FOR UPDATE SKIP
  LOCKED``), so no other collector sends them while this one does, and a
  collector killed mid-send leaves them due again when the lease ends. The
  message sent again then carries the same idempotency key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import takewhile
from typing import TYPE_CHECKING

from hcp.collector.store.outboxes import PENDING, OutboxItem, OutboxTable

if TYPE_CHECKING:
    from hcp.collector.store.engine import Engine

#: The job names in use: one advisory lock key each (docs/scaling.md lists them).
JOBS = ("defaults", "notify-queue", "upstream-queue", "chain-head", "retention", "claim:upstream_outbox")


def job_key(job: str) -> int:
    """The job's advisory lock key: a signed 64-bit integer from its name, the same in every collector."""
    return int.from_bytes(hashlib.blake2b(f"hcp-job:{job}".encode(), digest_size=8).digest(), "big", signed=True)


class JobQueries:
    """Job locks and outbox claims; mixed into the Store, which provides ``_conn`` and ``_unit``."""

    _conn: Engine
    _unit: Callable[[], AbstractContextManager[None]]

    @contextmanager
    def exclusive(self, job: str) -> Iterator[bool]:
        """One transaction for one run of ``job``; yields whether this collector runs it now.

        False only on PostgreSQL, when another collector holds the job's lock: skip the run, the other one
        does it. On SQLite it is always True (``BEGIN IMMEDIATE`` serializes the runs; the job's unique
        keys make a second run find nothing to do). Inside a transaction already open it is a savepoint of
        it, and the lock lasts until that transaction ends.
        """
        with self._unit():
            if self._conn.dialect == "postgresql":
                row = self._conn.execute("SELECT pg_try_advisory_xact_lock(?)", (job_key(job),)).fetchone()
                yield bool(row[0])
            else:
                yield True

    def claim_outbox_records(self, table: OutboxTable, limit: int, at: str, lease_until: str, *,
                             ordered: bool) -> list[OutboxItem]:
        """Take up to ``limit`` records due at ``at`` for this sender alone until ``lease_until``.

        ``ordered``: the first pending record not yet due (or leased to another sender) holds back every
        later one, so only the head of the queue is ever taken (one sender at a time, in order). Each item
        keeps the ``next_at`` it had before the claim.
        """
        # An ordered outbox is claimed under its job lock (one sender at a time, from the head); an unordered
        # one in a plain transaction, where SKIP LOCKED lets senders take different rows at once.
        with self.exclusive(f"claim:{table.name}") if ordered else _held(self._unit()) as mine:
            if not mine:
                return []
            items = self._due_rows(table, limit, at, ordered=ordered)
            for item in items:
                self._conn.execute(f"UPDATE {table.name} SET next_at = ? WHERE {table.key} = ? AND status = ?",
                                   (lease_until, item.key, PENDING))
            return items

    def release_outbox_records(self, table: OutboxTable, items: Sequence[OutboxItem], lease_until: str) -> None:
        """Give back claimed records not tried: each due again when it was before, unless taken since."""
        if not items:
            return
        with self._unit():
            for item in items:
                self._conn.execute(f"UPDATE {table.name} SET next_at = ? WHERE {table.key} = ? AND status = ? "
                                   "AND next_at = ?", (item.next_at, item.key, PENDING, lease_until))

    def _due_rows(self, table: OutboxTable, limit: int, at: str, *, ordered: bool) -> list[OutboxItem]:
        t = table
        pg = self._conn.dialect == "postgresql"
        tie = self._conn.row_order  # the insertion order breaks ties of created_at
        when = "" if ordered else "AND next_at <= ? "
        # An unordered outbox lets other senders take other rows meanwhile; an ordered one is taken whole
        # under the claim's job lock, so no row is skipped past the head.
        lock = " FOR UPDATE SKIP LOCKED" if pg and not ordered else ""
        rows = self._conn.execute(
            f"SELECT {t.key}, attempts, next_at, {', '.join(t.fields)} FROM {t.name} WHERE status = ? {when}"
            f"ORDER BY created_at, {tie} LIMIT ?{lock}", (PENDING, *(() if ordered else (at,)), limit)).fetchall()
        items = [OutboxItem(key, dict(zip(t.fields, rest, strict=True)), attempts, next_at)
                 for key, attempts, next_at, *rest in rows]
        return list(takewhile(lambda item: item.next_at <= at, items))


@contextmanager
def _held(unit: AbstractContextManager[None]) -> Iterator[bool]:
    """A unit of work that needs no lock: held, always."""
    with unit:
        yield True

"""One durable retry outbox for what the collector delivers: notifications, and records for the upstream platform.

A record is queued once under its key: :meth:`RetryOutbox.enqueue` ignores a
key it already holds, so a rescan or a restart queues nothing twice. It is
then tried until it is *sent* or *given up* (by its sender, or after
:attr:`Backoff.max_attempts` tries); between tries it waits
:func:`hcp.retry.backoff_delay` (random, capped, growing with the record's
failures, the first retry after ``base_s``). Every change is written in the
store's transaction before the next record is tried, so a restart carries on
where the last run stopped.

An *ordered* outbox delivers in the order records were queued: the first
pending record that is not yet due, or that failed and waits for its retry,
holds back every later one (the platform must see a rating before its
exclusion). An unordered one sends whatever is due.

Each user keeps its own table (``notifications``, ``upstream_outbox``),
named by an :class:`~hcp.collector.store.outboxes.OutboxTable`; the SQL of
both is in the storage layer (:mod:`hcp.collector.store.outboxes`), this
module is the policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import takewhile
from typing import NamedTuple

from hcp.collector.store import Store
from hcp.collector.store.outboxes import NOTIFICATIONS, PENDING, SENT, UPSTREAM, OutboxItem, OutboxTable
from hcp.domain import utc_text
from hcp.retry import backoff_delay

log = logging.getLogger("hcp.collector.retry_outbox")

#: Records claimed at once; with the senders' 10 s timeouts they are tried well within LEASE_S.
CLAIM_CHUNK = 10
#: How long claimed records are one sender's: a sender killed mid-try leaves them due again after it.
LEASE_S = 300.0

__all__ = ["NOTIFICATIONS", "PENDING", "SENT", "UPSTREAM", "Backoff", "Drained", "OutboxItem", "OutboxTable",
           "Outcome", "RetryOutbox"]


@dataclass(frozen=True)
class Backoff:
    """Random, capped, growing delays; ``max_attempts`` 0 retries for ever (nothing is dropped)."""

    base_s: float = 5.0
    cap_s: float = 3600.0
    max_attempts: int = 0

    def delay(self, failures: int) -> float:
        """The wait after a record's ``failures``-th failure (1 = the first: ``base_s``)."""
        return backoff_delay(max(failures - 1, 0), self.base_s, self.cap_s)


@dataclass(frozen=True)
class Outcome:
    """What one try of a record came to: ``sent``, ``retry`` or ``give-up`` (``tried`` False: no attempt made)."""

    state: str
    detail: str = ""
    tried: bool = True

    @classmethod
    def sent(cls, detail: str = "") -> Outcome:
        return cls("sent", detail)

    @classmethod
    def retry(cls, detail: str) -> Outcome:
        return cls("retry", detail)

    @classmethod
    def give_up(cls, detail: str, *, tried: bool = True) -> Outcome:
        return cls("give-up", detail, tried)


class Drained(NamedTuple):
    """What one :meth:`RetryOutbox.drain` did: records sent, given up, left to retry."""

    sent: int
    given_up: int
    retrying: int


class RetryOutbox:
    """The records of one :class:`OutboxTable` over a store's connection, tried with backoff until final."""

    def __init__(self, store: Store, table: OutboxTable, backoff: Backoff = Backoff(), *, ordered: bool = False,
                 batch: int = -1, lease_s: float = LEASE_S) -> None:
        self.store = store
        self.lease_s = lease_s  # a claimed record is this sender's alone so long: CLAIM_CHUNK tries must fit
        self.table = table
        self.backoff = backoff
        self.ordered = ordered
        self.batch = batch  # at most this many records per drain; -1: all that are due

    # -- queueing --------------------------------------------------------------

    def enqueue(self, rows: Sequence[tuple], now: datetime) -> int:
        """Queue ``(key, *fields)`` rows, due at once; a key already queued is left as it is. How many were new."""
        return self.store.enqueue_outbox(self.table, rows, utc_text(now))

    # -- delivering ------------------------------------------------------------

    def due(self, now: datetime) -> list[OutboxItem]:
        """The pending records to try now, oldest first; in an ordered outbox, none after one not yet due."""
        at = utc_text(now)
        items = self.store.pending_outbox_records(self.table, self.batch, None if self.ordered else at)
        return list(takewhile(lambda item: item.next_at <= at, items))

    def drain(self, now: datetime, attempt: Callable[[OutboxItem], Outcome], *,
              finished: Callable[[OutboxItem], None] | None = None) -> Drained:
        """Try every due record with ``attempt`` and record its outcome; ``finished`` runs after each final one.

        Records are claimed :data:`CLAIM_CHUNK` at a time for :attr:`lease_s` before they are tried
        (:meth:`Store.claim_outbox_records`), so collectors draining one database at once never try one
        record together. In an ordered outbox a record that must be retried stops the run: the later ones
        wait behind it, their claim given back.
        """
        counts = {SENT: 0, self.table.given_up: 0, "retry": 0}
        left = self.batch if self.batch > 0 else None
        while left is None or left > 0:
            items = self.claim(now, CLAIM_CHUNK if left is None else min(left, CLAIM_CHUNK))
            if not items:
                break
            left = None if left is None else left - len(items)
            for number, item in enumerate(items):
                state = self.record(item, attempt(item), now)
                counts[state] += 1
                if state == "retry" and self.ordered:
                    self.store.release_outbox_records(self.table, items[number + 1:], self._lease_end(now))
                    return Drained(counts[SENT], counts[self.table.given_up], counts["retry"])
                if state != "retry" and finished is not None:
                    finished(item)
        return Drained(counts[SENT], counts[self.table.given_up], counts["retry"])

    def claim(self, now: datetime, limit: int) -> list[OutboxItem]:
        """Up to ``limit`` due records, taken for this sender alone until ``lease_s`` from ``now``."""
        return self.store.claim_outbox_records(self.table, limit, utc_text(now), self._lease_end(now),
                                               ordered=self.ordered)

    def _lease_end(self, now: datetime) -> str:
        return utc_text(now + timedelta(seconds=self.lease_s))

    def record(self, item: OutboxItem, outcome: Outcome, now: datetime) -> str:
        """Write what a try of ``item`` came to; its new status, or ``retry`` when it stays pending."""
        attempts = item.attempts + outcome.tried
        if outcome.state == "retry" and self.backoff.max_attempts and attempts >= self.backoff.max_attempts:
            outcome = Outcome.give_up(f"gave up after {attempts} attempts: {outcome.detail}")
        if outcome.state == "retry":
            self._retry_later(item.key, attempts, outcome.detail, now)
            log.log(self.table.retry_level, "%s %s not delivered (attempt %d): %s", self.table.label, item.key,
                    attempts, outcome.detail)
            return "retry"
        status = SENT if outcome.state == "sent" else self.table.given_up
        self._finish(item.key, status, attempts, outcome.detail, now)
        if status == SENT:
            log.log(self.table.sent_level, "%s %s sent", self.table.label, item.key)
        else:  # given up; before any try it is routine (a reminder whose case was rated meanwhile)
            log.log(logging.WARNING if outcome.tried else logging.INFO, "%s %s %s: %s", self.table.label, item.key,
                    status, outcome.detail)
        return status

    def _retry_later(self, key: str, attempts: int, error: str, now: datetime) -> None:
        next_at = utc_text(now + timedelta(seconds=self.backoff.delay(attempts)))
        self.store.retry_outbox_record_later(self.table, key, attempts, error, next_at)

    def _finish(self, key: str, status: str, attempts: int, detail: str, now: datetime) -> None:
        self.store.finish_outbox_record(self.table, key, status, attempts, detail, utc_text(now))

    # -- reporting -------------------------------------------------------------

    def statuses(self) -> dict[str, int]:
        """How many records are pending, sent, given up (under the table's own words)."""
        return self.store.outbox_statuses(self.table)

    def given_up_records(self) -> list[tuple[str, str]]:
        """``(key, reason)`` of every record given up, the earliest first."""
        return self.store.given_up_outbox_records(self.table)

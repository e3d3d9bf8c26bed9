"""Forwarding to the provincial 好差评 platform: a durable outbox, an adapter, retries with backoff.

:class:`Forwarder` reads the store's records after a cursor (accepted ratings
of every channel and the system defaults, later acceptances, exclusions,
appeal decisions) into ``upstream_outbox``, in the same transaction that moves
the cursor, so nothing is missed or queued twice across restarts. Each record
is then delivered through an :class:`Adapter` until it is *sent* or *rejected*
by the platform with its reason. The record id goes upstream as the
idempotency key: a record delivered again after a lost answer is the same
record to the platform. Records go in the order they were made: one waiting
for its retry holds back the rest (an ordered
:class:`~hcp.collector.retry_outbox.RetryOutbox`). The rater's identity is
never part of an outbox payload; a real-name preset adds it only while it
builds the signed request (``upstream_format``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hcp.collector.retry_outbox import UPSTREAM, Backoff, OutboxItem, Outcome, RetryOutbox
from hcp.collector.store import Store
from hcp.collector.upstream_codes import CodeTable
from hcp.collector.upstream_sign import Signer

STATUSES = UPSTREAM.statuses
#: The names of the fields in hcp's own payload; an adapter may rename each.
FIELDS = ("id", "record_type", "rating_id", "kind", "channel", "satisfaction", "reasons", "text", "rated_at",
          "case_ids", "item_code", "hall_id", "window_id", "clerk_id", "decision", "decision_reason", "decided_at")


@dataclass(frozen=True)
class Delivery:
    """An adapter's answer for one record: sent, rejected (with the platform's reason), or retry later."""

    status: str  # sent, rejected, retry
    detail: str = ""


class Adapter(Protocol):
    """Delivers one outbox record (hcp's payload) to the platform."""

    def deliver(self, record: dict) -> Delivery: ...

    def done(self, record: dict, now: datetime) -> None:
        """The platform's answer on ``record`` is final (sent or rejected)."""

    def erase_due(self, now: datetime) -> int:
        """Erase what the adapter keeps only until the platform has answered; how many."""


@dataclass(frozen=True)
class HttpJsonAdapter:
    """POST one JSON object per record, field names and codes from the configuration and code table."""

    url: str
    table: CodeTable
    signer: Signer | None = None
    fields: dict[str, str] = field(default_factory=dict)
    reason_field: str = "message"
    timeout_s: float = 10.0

    def body(self, record: dict) -> bytes:
        """The request body for ``record``: renamed fields, codes from the table."""
        mapped = dict(record)
        if "score" in mapped:
            mapped["satisfaction"] = self.table.score(mapped.pop("score"))
        if "channel" in mapped:
            mapped["channel"] = self.table.channel(mapped["channel"])
        if "kind" in mapped:
            mapped["kind"] = self.table.kind(mapped["kind"])
        mapped["code_table"] = self.table.name
        mapped.pop("case_details", None)  # for the presets' formats (upstream_format); not in hcp's own payload
        return json.dumps({self.fields.get(k, k): v for k, v in mapped.items()}, ensure_ascii=False).encode()

    def deliver(self, record: dict) -> Delivery:
        body = self.body(record)
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": record["id"]}
        if self.signer is not None:
            headers.update(self.signer.headers(body))
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read()
        except urllib.error.HTTPError as err:
            return self._refused(err.code, err.read())
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            return Delivery("retry", f"platform unreachable ({type(err).__name__}: {err})"[:200])
        return Delivery("sent")

    def done(self, record: dict, now: datetime) -> None:
        """Nothing is kept for this adapter."""

    def erase_due(self, now: datetime) -> int:
        return 0

    def _refused(self, code: int, body: bytes) -> Delivery:
        if code == 409:
            return Delivery("sent", "the platform already had it")
        if 400 <= code < 500 and code not in (408, 425, 429):
            return Delivery("rejected", f"HTTP {code}: {self._reason(body)}")
        return Delivery("retry", f"HTTP {code}")

    def _reason(self, body: bytes) -> str:
        text = body.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            return text[:200] or "no reason given"
        return str(data.get(self.reason_field, text))[:200] if isinstance(data, dict) else text[:200]


@dataclass(frozen=True)
class ForwardRun:
    queued: int
    sent: int
    rejected: int
    retrying: int


class Forwarder:
    """The outbox to the provincial platform over one store connection (its own thread's)."""

    def __init__(self, store: Store, adapter: Adapter, *, backoff: Backoff | None = None,
                 batch: int = 100) -> None:
        self.store = store
        self.adapter = adapter
        self.backoff = backoff or Backoff()
        self.batch = batch
        self.outbox = RetryOutbox(store, UPSTREAM, self.backoff, ordered=True, batch=batch)

    def run(self, now: datetime) -> ForwardRun:
        """Queue what is new, then deliver what is due."""
        queued = self.queue(now)
        run = ForwardRun(queued, *self.deliver_due(now))
        self.adapter.erase_due(now)
        return run

    # -- queueing --------------------------------------------------------------

    def queue(self, now: datetime) -> int:
        """Move every new record after its cursor into the outbox; returns how many were queued."""
        store = self.store
        with store.exclusive("upstream-queue") as mine:
            if not mine:  # another collector moves the cursors now (PostgreSQL)
                return 0
            made = 0
            for name, fetch, build in _SOURCES:
                rows = fetch(store, store.read_cursor(name))
                records = [build(store, row) for row in rows]
                made += self._insert([r for r in records if r is not None], now)
                if rows:
                    store.move_cursor(name, rows[-1][0])
        return made

    def _insert(self, records: list[dict], now: datetime) -> int:
        return self.outbox.enqueue([(r["id"], r["record_type"], json.dumps(r, ensure_ascii=False)) for r in records],
                                   now)

    # -- delivering ------------------------------------------------------------

    def deliver_due(self, now: datetime) -> tuple[int, int, int]:
        """Deliver pending records in order, oldest first, until one must wait; (sent, rejected, retrying).

        A record waiting for its retry holds back the ones after it, so the
        platform receives records in the order they were made (a rating
        before its exclusion), across failures and restarts.
        """
        drained = self.outbox.drain(now, self._deliver,
                                    finished=lambda item: self.adapter.done(_payload(item), now))
        return drained.sent, drained.given_up, drained.retrying

    def _deliver(self, item: OutboxItem) -> Outcome:
        delivery = self.adapter.deliver(_payload(item))
        if delivery.status == "retry":
            return Outcome.retry(delivery.detail)
        return Outcome.sent(delivery.detail) if delivery.status == "sent" else Outcome.give_up(delivery.detail)

    def statuses(self) -> dict[str, int]:
        """How many outbox records are pending, sent, rejected."""
        return self.outbox.statuses()


def _payload(item: OutboxItem) -> dict:
    return json.loads(item.values["payload"])


# -- the record sources ----------------------------------------------------------


def _rating(store: Store, row: tuple) -> dict:
    (_order, rating_id, kind, channel, score, reasons, rated_at, case_ids, item_code, hall_id, window_id, clerk_id,
     text) = row
    return {"id": rating_id, "record_type": "rating", "rating_id": rating_id, "kind": kind, "channel": channel,
            "score": score, "reasons": json.loads(reasons), "text": text or "", "rated_at": rated_at,
            "case_ids": json.loads(case_ids), "item_code": item_code, "hall_id": hall_id, "window_id": window_id,
            "clerk_id": clerk_id, "case_details": store.upstream_case_details(rating_id, json.loads(case_ids))}


def _accepted_later(store: Store, row: tuple) -> dict:
    return _rating(store, store.upstream_rating(row[0], row[1]))


def _exclusion(store: Store, row: tuple) -> dict:
    number, rating_id, kind, decided_at, reason = row
    return {"id": f"exclusion:{number}", "record_type": "exclusion", "rating_id": rating_id, "decision": kind,
            "decision_reason": reason, "decided_at": decided_at}


def _appeal_decision(store: Store, row: tuple) -> dict:
    number, rating_id, upheld, decided_at, reason = row
    return {"id": f"appeal-decision:{number}", "record_type": "appeal-decision", "rating_id": rating_id,
            "decision": "upheld" if upheld else "dismissed", "decision_reason": reason, "decided_at": decided_at}


#: Each scanner: its cursor's name, what it reads after the cursor (first column: the new cursor), the record.
_SOURCES: tuple[tuple[str, Callable[[Store, int], list], Callable[[Store, tuple], dict]], ...] = (
    ("upstream-ratings", Store.upstream_ratings_after, _rating),
    ("upstream-decisions", Store.upstream_acceptances_after, _accepted_later),
    ("upstream-exclusions", Store.upstream_exclusions_after, _exclusion),
    ("upstream-appeals", Store.upstream_appeal_decisions_after, _appeal_decision),
)

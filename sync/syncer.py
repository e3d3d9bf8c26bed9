"""Draining the outbox to the collector, in seq order, a bounded number of messages at a time.

A rating leaves the outbox only when the collector's AckMessage names it: a
broker PUBACK proves only that the broker has the message, not that the
collector stored it. Everything not acked is sent again after a reconnect or
a timeout; the collector answers repeats with ``duplicate``, so resending is
always safe.

A message the collector refuses as a whole (an ack with an ``error`` and no
results, naming the message by ``first_rating_id``: a newer protocol version,
too many ratings, an unregistered terminal) leaves every rating of it in the
outbox. The syncer splits such a message in two and sends the halves, so a
batch too large for the collector finds a size that passes, keeps a refused
single rating for the next resend, and reports the refusal in ``refused``
until the collector answers again.

Single-threaded: the agent calls every method from its own thread (the MQTT
link's callbacks hand acks and connection changes over to it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hcp.protocol import MAX_PAYLOAD_BYTES, MAX_RATINGS_PER_MESSAGE, AckMessage, AckResult, Topics
from hcp.sync.exc import LinkDown
from hcp.sync.outbox import Outbox, Pending

log = logging.getLogger("hcp.sync.syncer")


@dataclass
class _Flight:
    """One published rating message awaiting the collector's ack."""

    payload: bytes
    rows: list[Pending]
    waiting: set[str] = field(default_factory=set)
    sent_at: float = 0.0

    @property
    def count(self) -> int:
        return len(self.rows)


class Syncer:
    """Publishes RatingMessage batches from the outbox and settles them on the collector's ack."""

    def __init__(self, outbox: Outbox, publish: Callable[[str, bytes], None], topics: Topics, device_id: str, *,
                 batch_size: int = 500, max_in_flight: int = 4, resend_after_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.outbox = outbox
        self.topic = topics.rating(device_id)
        self.batch_size = min(batch_size, MAX_RATINGS_PER_MESSAGE)
        self.max_in_flight = max_in_flight
        self.resend_after_s = resend_after_s
        self._publish = publish
        self._clock = clock
        # The message is spliced from the stored wire JSON of each rating; this
        # is exactly what protocol.encode(RatingMessage(...)) would produce.
        self._head = b'{"v":1,"device_id":' + json.dumps(device_id).encode() + b',"ratings":['
        self._flights: dict[int, _Flight] = {}  # by first seq: insertion order is seq order
        self._flight_of: dict[str, int] = {}  # rating_id -> key of the flight carrying it
        self._cursor = 0  # highest seq published since the last reset
        #: The collector's last message-level error, until it answers a rating again.
        self.refused: str | None = None

    @property
    def in_flight(self) -> int:
        """Rating messages published and not yet fully acked."""
        return len(self._flights)

    def on_connection(self, up: bool) -> None:
        """Forget what is in flight, so everything unacked is sent again from the oldest."""
        if self._flights:
            log.info("link %s: %d messages in flight will be sent again", "up" if up else "down", len(self._flights))
        self._flights.clear()
        self._flight_of.clear()
        self._cursor = 0

    def pump(self) -> int:
        """Resend stale messages, then publish new batches while slots are free; return ratings published."""
        published = 0
        try:
            published += self._resend_stale()
            while len(self._flights) < self.max_in_flight:
                sent = self._send_next()
                if not sent:
                    break
                published += sent
        except LinkDown as err:
            log.debug("pump stopped: %s", err)
        return published

    def on_ack(self, ack: AckMessage) -> list[AckResult]:
        """Settle the answered ratings in the outbox and free their in-flight slots."""
        results = list(ack.results)
        if results:
            self.outbox.settle(results)  # first: if it fails, the slots stay taken and the batch is resent
            self.refused = None
        for result in results:
            self._answered(result.rating_id)
        if ack.error:
            self._refused(ack)
        return results

    # -- helpers ----------------------------------------------------------------

    def _resend_stale(self) -> int:
        now = self._clock()
        resent = 0
        for flight in self._flights.values():
            if now - flight.sent_at >= self.resend_after_s:
                self._publish(self.topic, flight.payload)
                flight.sent_at = now
                resent += flight.count
                log.info("resent %d ratings not acked within %.0f s", flight.count, self.resend_after_s)
        return resent

    def _send_next(self) -> int:
        rows = self._fit(self.outbox.pending_raw(self.batch_size, self._cursor))
        if not rows:
            return 0
        self._send(rows)
        self._cursor = max(self._cursor, rows[-1].seq)
        return len(rows)

    def _send(self, rows: list[Pending]) -> None:
        flight = _Flight(payload=self._head + b",".join(row.body for row in rows) + b"]}", rows=rows,
                         waiting={row.rating_id for row in rows})
        self._publish(self.topic, flight.payload)  # raises LinkDown before anything is recorded
        flight.sent_at = self._clock()
        key = rows[0].seq
        self._flights[key] = flight
        self._flight_of.update(dict.fromkeys(flight.waiting, key))

    def _refused(self, ack: AckMessage) -> None:
        """The collector took none of a message: keep its ratings, split it, and say so."""
        self.refused = ack.error
        key = self._flight_of.get(ack.first_rating_id) if ack.first_rating_id else None
        flight = self._flights.get(key) if key is not None else None
        if flight is None or ack.results:
            log.error("collector could not handle a rating message: %s", ack.error)
            return
        log.error("collector refused a message of %d rating(s), which stay in the outbox: %s", flight.count,
                  ack.error)
        if flight.count == 1:
            return  # sent again after resend_after_s, and refused again until the cause is mended
        del self._flights[key]
        for rating_id in flight.waiting:
            self._flight_of.pop(rating_id, None)
        half = flight.count // 2
        try:
            self._send(flight.rows[:half])
            self._send(flight.rows[half:])
        except LinkDown as err:  # the reconnect sends everything unacked again from the oldest
            log.debug("split message not sent: %s", err)

    def _fit(self, rows: list[Pending]) -> list[Pending]:
        """The longest head of ``rows`` whose message stays under the protocol's size limit."""
        room = MAX_PAYLOAD_BYTES - len(self._head) - 2
        for n, row in enumerate(rows):
            room -= len(row.body) + 1
            if room < 0:
                return rows[:max(n, 1)]  # one rating alone always fits: the protocol bounds its fields
        return rows

    def _answered(self, rating_id: str) -> None:
        key = self._flight_of.pop(rating_id, None)
        flight = self._flights.get(key) if key is not None else None
        if key is None or flight is None:  # a late ack of a message forgotten on reconnect
            return
        flight.waiting.discard(rating_id)
        if not flight.waiting:
            del self._flights[key]

"""The syncer draining a real outbox through a real broker to a small collector stand-in.

The stand-in is a few lines of real protocol v1 traffic over MqttLink: it
subscribes to every terminal's ratings and answers each message with an
AckMessage, as the collector does. The test thread plays the agent: the
link's callbacks only queue events, and the test thread hands them to the
syncer, which is single-threaded by contract.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from hcp import protocol
from hcp.domain import CST, Kind, Outcome
from hcp.protocol import AckMessage, AckResult, RatingMessage, Topics
from hcp.sim.broker import Broker
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink
from hcp.sync.outbox import Draft, Outbox
from hcp.sync.syncer import Syncer

WAIT_S = 10.0
DEVICE = "hall01-w03"


def draft(n: int, **extra: object) -> Draft:
    return Draft(kind=Kind.SERVICE, case_ids=(f"case-{n}",), score=1 + n % 5,
                 rated_at=datetime(2024, 5, 6, 10, 30, tzinfo=CST), clock_synced=True, prompt_id=f"p-{n}",
                 hall_id="hall01", window_id="w03", clerk_id="c7", item_code="item-1", **extra)  # type: ignore[arg-type]


def fill(box: Outbox, count: int) -> set[str]:
    ids: set[str] = set()
    for start in range(0, count, 1000):
        ids.update(r.rating_id for r in box.add_many(draft(n) for n in range(start, min(count, start + 1000))))
    return ids


@dataclass
class Collector:
    """Answers every rating message with an ack, as the real collector does."""

    topics: Topics
    link: MqttLink | None = None
    seen: Counter[str] = field(default_factory=Counter)
    ignore_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, message: Incoming) -> None:
        batch = protocol.decode(RatingMessage, message.payload)
        with self.lock:
            if self.ignore_next:
                self.ignore_next -= 1
                return
            results = [AckResult(rating_id=r.rating_id,
                                 outcome=Outcome.DUPLICATE if self.seen[r.rating_id] else Outcome.ACCEPTED)
                       for r in batch.ratings]
            self.seen.update(r.rating_id for r in batch.ratings)
        assert self.link is not None
        self.link.publish(self.topics.ack(batch.device_id), protocol.encode(AckMessage(v=1, results=results)))


class Terminal:
    """The agent's side: a link whose callbacks queue events for the test thread."""

    def __init__(self, broker: Broker, box: Outbox, topics: Topics, **syncer: object) -> None:
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        self.link = MqttLink(LinkSettings(broker.host, broker.port, f"term-{uuid.uuid4().hex}", backoff_min_s=0.05,
                                          backoff_max_s=0.5),
                             lambda m: self.events.put(("message", m)), lambda up: self.events.put(("link", up)))
        self.link.subscribe(topics.ack(DEVICE))
        self.syncer = Syncer(box, self.link.publish, topics, DEVICE, **syncer)  # type: ignore[arg-type]
        self.acked: Counter[str] = Counter()

    def handle(self, timeout: float) -> None:
        """Hand queued events to the syncer, waiting up to ``timeout`` for the first."""
        try:
            kind, value = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if kind == "link":
                self.syncer.on_connection(bool(value))
            elif isinstance(value, Incoming):
                results = self.syncer.on_ack(protocol.decode(AckMessage, value.payload))
                self.acked.update(r.rating_id for r in results)
            try:
                kind, value = self.events.get_nowait()
            except queue.Empty:
                return

    def drain(self, box: Outbox, deadline_s: float = 60.0) -> None:
        deadline = time.monotonic() + deadline_s
        while box.depth() and time.monotonic() < deadline:
            self.syncer.pump()
            self.handle(0.05)
        assert box.depth() == 0, f"{box.depth()} ratings left in the outbox"


@pytest.fixture
def topics() -> Topics:
    return Topics(prefix=f"test{uuid.uuid4().hex[:8]}/v1")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        yield outbox


@pytest.fixture
def collector(broker: Broker, topics: Topics) -> Iterator[Collector]:
    stand_in = Collector(topics)
    stand_in.link = MqttLink(LinkSettings(broker.host, broker.port, f"collector-{uuid.uuid4().hex}",
                                          backoff_min_s=0.05, backoff_max_s=0.5), stand_in.on_message)
    stand_in.link.subscribe(topics.all_ratings)
    stand_in.link.start()
    assert stand_in.link.wait_connected(WAIT_S)
    yield stand_in
    stand_in.link.close()


def connect(terminal: Terminal) -> None:
    terminal.link.start()
    assert terminal.link.wait_connected(WAIT_S)
    terminal.handle(WAIT_S)  # the "link up" event, before anything is published
    time.sleep(0.2)  # the subscriptions' SUBACKs


def test_drains_10000_ratings_exactly_once(broker: Broker, topics: Topics, box: Outbox,
                                           collector: Collector) -> None:
    ids = fill(box, 10_000)
    terminal = Terminal(broker, box, topics)
    with terminal.link:
        connect(terminal)
        started = time.perf_counter()
        terminal.drain(box)
        elapsed = time.perf_counter() - started
    print(f"\nend-to-end drain: 10000 ratings in {elapsed:.2f} s = {10_000 / elapsed:,.0f} ratings/s")
    assert set(collector.seen) == ids and set(collector.seen.values()) == {1}
    assert set(terminal.acked) == ids and terminal.syncer.in_flight == 0


def test_broker_restart_mid_drain_loses_nothing(broker: Broker, topics: Topics, box: Outbox,
                                                collector: Collector) -> None:
    ids = fill(box, 6000)
    terminal = Terminal(broker, box, topics, batch_size=200, max_in_flight=2)
    with terminal.link:
        connect(terminal)
        while box.depth() > 4000:
            terminal.syncer.pump()
            terminal.handle(0.05)
        broker.stop()
        for _ in range(10):  # the agent keeps pumping while the link is down: quietly nothing happens
            terminal.syncer.pump()
            terminal.handle(0.05)
        assert box.depth() > 0
        broker.start()
        terminal.drain(box)
    assert set(collector.seen) == ids
    assert set(terminal.acked) == ids


def test_unacked_message_is_resent_after_timeout(broker: Broker, topics: Topics, box: Outbox,
                                                 collector: Collector) -> None:
    now = [1000.0]
    ids = fill(box, 25)
    terminal = Terminal(broker, box, topics, batch_size=10, max_in_flight=2, resend_after_s=5.0,
                        clock=lambda: now[0])
    collector.ignore_next = 2  # the collector "loses" the first two messages
    with terminal.link:
        connect(terminal)
        assert terminal.syncer.pump() == 20  # two messages of 10: the in-flight bound
        assert terminal.syncer.in_flight == 2
        terminal.handle(0.5)
        assert terminal.syncer.pump() == 0 and box.depth() == 25  # nothing acked, nothing stale yet
        now[0] += 5.0
        assert terminal.syncer.pump() == 20  # both resent
        terminal.drain(box)
    assert set(terminal.acked) == ids and terminal.syncer.in_flight == 0


def test_pump_while_link_down_publishes_nothing(box: Outbox, topics: Topics) -> None:
    fill(box, 5)
    link = MqttLink(LinkSettings("127.0.0.1", 1, "never-connected"), lambda m: None)
    syncer = Syncer(box, link.publish, topics, DEVICE)
    assert syncer.pump() == 0 and syncer.in_flight == 0 and box.depth() == 5


def test_messages_follow_protocol_v1_and_its_size_limit(box: Outbox, topics: Topics) -> None:
    bulky = [Draft(kind=Kind.SERVICE, case_ids=tuple(f"case-{n}-{k:02d}-{'x' * 50}" for k in range(50)), score=3,
                   rated_at=datetime(2024, 5, 6, 10, 30, tzinfo=CST), clock_synced=False,
                   reasons=tuple(f"reason-{k:02d}-{'x' * 30}" for k in range(20))) for n in range(800)]
    box.add_many(bulky)  # about 4 kB each: a 500-rating batch would be far over the 256 kB limit
    sent: list[tuple[str, bytes]] = []
    syncer = Syncer(box, lambda topic, payload: sent.append((topic, payload)), topics, DEVICE,
                    batch_size=1000, max_in_flight=64)
    assert syncer.pump() == 800
    assert len(sent) > 1 and all(len(payload) <= protocol.MAX_PAYLOAD_BYTES for _, payload in sent)
    messages = [protocol.decode(RatingMessage, payload) for _, payload in sent]
    assert {topic for topic, _ in sent} == {topics.rating(DEVICE)}
    assert [r.seq for m in messages for r in m.ratings] == list(range(1, 801))
    assert sent[0][1] == protocol.encode(messages[0])  # byte for byte what encode() would make
    first = messages[0].ratings
    results = syncer.on_ack(AckMessage(v=1, results=[AckResult(rating_id=r.rating_id, outcome=Outcome.ACCEPTED)
                                                     for r in first]))
    assert len(results) == len(first) and syncer.in_flight == len(sent) - 1
    assert box.depth() == 800 - len(first)
    syncer.on_connection(False)
    assert syncer.in_flight == 0 and syncer.pump() == 800 - len(first)  # all unacked sent again, oldest first

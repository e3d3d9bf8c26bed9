"""MqttLink against a real Mosquitto: sessions, reconnects, manual acks, supervision."""

from __future__ import annotations

import logging
import queue
import uuid
from collections.abc import Iterator

import pytest

from hcp.sim.broker import Broker
from hcp.sync.exc import LinkDown
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink

WAIT_S = 10.0


class Inbox:
    """Collects what a link delivers, for the test thread to wait on."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Incoming] = queue.Queue()
        self.states: queue.Queue[bool] = queue.Queue()

    def on_message(self, message: Incoming) -> None:
        self.messages.put(message)

    def on_connection(self, up: bool) -> None:
        self.states.put(up)

    def next(self) -> Incoming:
        return self.messages.get(timeout=WAIT_S)

    def empty_for(self, seconds: float) -> bool:
        try:
            self.messages.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@pytest.fixture
def topic() -> str:
    return f"test/{uuid.uuid4().hex}"


@pytest.fixture
def links() -> Iterator[list[MqttLink]]:
    made: list[MqttLink] = []
    yield made
    for link in made:
        link.close()


def open_link(links: list[MqttLink], broker: Broker, inbox: Inbox, client_id: str | None = None,
              **settings: object) -> MqttLink:
    config = LinkSettings(host=broker.host, port=broker.port, client_id=client_id or uuid.uuid4().hex,
                          backoff_min_s=0.05, backoff_max_s=0.5, **settings)  # type: ignore[arg-type]
    link = MqttLink(config, inbox.on_message, inbox.on_connection)
    links.append(link)
    link.start()
    assert link.wait_connected(WAIT_S)
    return link


def test_publish_subscribe_round_trip(broker: Broker, links: list[MqttLink], topic: str) -> None:
    inbox = Inbox()
    sub = open_link(links, broker, inbox)
    sub.subscribe(topic)
    pub = open_link(links, broker, Inbox())
    sub_ready(pub, inbox, topic)
    pub.publish(topic, b"hello", qos=1)
    got = inbox.next()
    assert (got.topic, got.payload, got.qos, got.retain) == (topic, b"hello", 1, False)
    assert inbox.states.get(timeout=1) is True


def sub_ready(pub: MqttLink, inbox: Inbox, topic: str) -> None:
    """Publish probes until the subscriber gets one: the SUBACK may still be on its way."""
    for _ in range(50):
        pub.publish(topic, b"probe", qos=0)
        try:
            if inbox.messages.get(timeout=0.2).payload == b"probe":
                break
        except queue.Empty:
            continue
    while not inbox.empty_for(0.1):
        pass


def test_resubscribes_after_broker_restart(broker: Broker, links: list[MqttLink], topic: str) -> None:
    inbox = Inbox()
    # clean_start=True: the broker forgets the subscription, so only our resubscribe brings it back.
    sub = open_link(links, broker, inbox, clean_start=True, session_expiry_s=0)
    sub.subscribe(topic)
    broker.stop()
    assert inbox.states.get(timeout=WAIT_S) is True
    assert inbox.states.get(timeout=WAIT_S) is False
    assert not sub.connected
    broker.start()
    assert sub.wait_connected(WAIT_S)
    pub = open_link(links, broker, Inbox())
    sub_ready(pub, inbox, topic)
    pub.publish(topic, b"after restart")
    assert inbox.next().payload == b"after restart"


def test_persistent_session_gets_messages_sent_while_away(broker: Broker, links: list[MqttLink],
                                                          topic: str) -> None:
    inbox = Inbox()
    sub = open_link(links, broker, inbox, client_id="away-sub")
    sub.subscribe(topic)
    pub = open_link(links, broker, Inbox())
    sub_ready(pub, inbox, topic)
    sub.close()
    for n in range(5):
        pub.publish(topic, f"m{n}".encode())
    back = open_link(links, broker, inbox, client_id="away-sub")
    assert [inbox.next().payload for _ in range(5)] == [f"m{n}".encode() for n in range(5)]
    assert back.connected


def test_unacked_message_is_redelivered_after_reconnect(broker: Broker, links: list[MqttLink], topic: str) -> None:
    inbox = Inbox()
    sub = open_link(links, broker, inbox, client_id="manual-sub", manual_ack=True)
    sub.subscribe(topic)
    pub = open_link(links, broker, Inbox())
    sub_ready(pub, inbox, topic)
    pub.publish(topic, b"must survive")
    first = inbox.next()
    assert first.payload == b"must survive" and not first.dup
    sub.close()  # never acked

    again = open_link(links, broker, inbox, client_id="manual-sub", manual_ack=True)
    second = inbox.next()
    assert second.payload == b"must survive" and second.dup
    again.ack(second)
    again.close()

    open_link(links, broker, inbox, client_id="manual-sub", manual_ack=True)
    assert inbox.empty_for(1.0)


def test_callback_exception_does_not_kill_the_loop(broker: Broker, links: list[MqttLink], topic: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox()

    def explosive(message: Incoming) -> None:
        if message.payload == b"boom":
            raise RuntimeError("bug in the owner's callback")
        inbox.on_message(message)

    def bad_connection(up: bool) -> None:
        raise RuntimeError("bug in on_connection")

    link = MqttLink(LinkSettings(broker.host, broker.port, uuid.uuid4().hex), explosive, bad_connection)
    links.append(link)
    link.start()
    assert link.wait_connected(WAIT_S)
    link.subscribe(topic)
    pub = open_link(links, broker, Inbox())
    sub_ready(pub, inbox, topic)
    with caplog.at_level(logging.ERROR, logger="hcp.sync.mqtt"):
        pub.publish(topic, b"boom")
        pub.publish(topic, b"fine")
        assert inbox.next().payload == b"fine"
    assert link.connected
    assert "bug in the owner's callback" in caplog.text


def test_close_twice_and_context_manager(broker: Broker) -> None:
    inbox = Inbox()
    with MqttLink(LinkSettings(broker.host, broker.port, uuid.uuid4().hex), inbox.on_message,
                  inbox.on_connection) as link:
        link.start()
        assert link.wait_connected(WAIT_S)
        link.close()
        assert not link.connected
    link.close()
    MqttLink(LinkSettings(broker.host, broker.port, "never-started"), inbox.on_message).close()


def test_publish_while_down_raises_link_down(broker: Broker, links: list[MqttLink], topic: str) -> None:
    link = MqttLink(LinkSettings(broker.host, broker.port, uuid.uuid4().hex), Inbox().on_message)
    links.append(link)
    with pytest.raises(LinkDown):
        link.publish(topic, b"x")  # not started
    link.start()
    assert link.wait_connected(WAIT_S)
    broker.stop()
    while link.connected:
        link.wait_connected(0.01)
    with pytest.raises(ConnectionError, match="not connected"):
        link.publish(topic, b"x")

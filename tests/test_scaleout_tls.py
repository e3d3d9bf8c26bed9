"""A share group behind the production TLS broker: each collector its own certificate, CN and ACL entry."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.service import Collector
from hcp.collector.store import Store
from hcp.config.schema import CollectorConfig
from hcp.domain import now_cst
from hcp.pki import Pki, PkiError, collector_acl, mosquitto_config
from hcp.protocol import AckMessage, Rating, RatingMessage, Topics, decode, encode
from hcp.sim.broker import TlsBroker
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink, TlsSettings

T = Topics()
WAIT_S = 10
MEMBERS = ("collector", "collector-2")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.init()
    pki.issue_broker(["localhost", "127.0.0.1"])
    pki.issue_device("h1-w1")
    for name in MEMBERS:
        pki.issue_service(name)
    return pki


def _collector(tmp_path: Path, broker: TlsBroker, pki: Pki, name: str) -> Collector:
    return Collector(CollectorConfig.model_validate({
        "collector": {"id": name, "share_group": "g", "database": str(tmp_path / "data" / "collector.sqlite")},
        "broker": {"host": "127.0.0.1", "port": broker.port, "ca_file": str(pki.ca_cert_path),
                   "cert_file": str(pki.cert_path(name)), "key_file": str(pki.key_path(name))},
        "data": {"dir": str(tmp_path / "data")}, "policy": {"preset": "ulanqab"}}))


@pytest.fixture
def broker(tmp_path, pki) -> Iterator[TlsBroker]:
    with TlsBroker(tmp_path / "broker", pki.dir) as running:
        yield running


def test_more_collectors_get_their_own_identity_and_acl_entry(pki, tmp_path) -> None:
    assert pki.collectors() == ["collector-2"]
    with pytest.raises(PkiError, match="service identity"):
        pki.issue_device("collector-3")  # a terminal never gets a collector's rights
    with pytest.raises(PkiError, match="collector-<name>"):
        pki.issue_service("collectors")
    acl = (mosquitto_config(pki.dir, tmp_path / "conf.d")[2]).read_text("utf-8")
    assert "user collector-2\ntopic read hcp/v1/dev/+/rating\n" in acl
    assert collector_acl(acl, []) == acl


def test_each_collector_of_the_group_is_let_in_and_served_under_its_own_cn(broker, pki, tmp_path) -> None:
    """Mosquitto checks a $share subscription against the ACL's plain topic: each member alone answers, and
    together each message is answered once."""
    group = [_collector(tmp_path, broker, pki, name) for name in MEMBERS]
    with Store.open(group[0].database, group[0].profile, load_or_create_key(group[0].secret_file)) as store:
        store.register_device("h1-w1", "h1", "w1")
    answers: queue.Queue[Incoming] = queue.Queue()
    tls = TlsSettings(pki.ca_cert_path, pki.cert_path("h1-w1"), pki.key_path("h1-w1"))
    terminal = MqttLink(LinkSettings("127.0.0.1", broker.port, "h1-w1", clean_start=True, session_expiry_s=0,
                                     tls=tls), answers.put)
    terminal.subscribe(T.ack("h1-w1"))
    terminal.start()
    try:
        assert terminal.wait_connected(WAIT_S)
        for member in group:  # each alone: its own CN is let in and its $share subscription granted
            member.start()
            assert member.wait_connected(WAIT_S) and member._link is not None
            assert member._link.settings.client_id == member.config.collector.id
            time.sleep(0.5)
            sent = [_send(terminal) for _ in range(5)]
            assert _answered(answers, len(sent)) == sorted(sent), member.config.collector.id
            member.close()
        group = [_collector(tmp_path, broker, pki, name) for name in MEMBERS]
        for member in group:
            member.start()
            assert member.wait_connected(WAIT_S)
        time.sleep(0.5)
        sent = [_send(terminal) for _ in range(10)]
        assert _answered(answers, len(sent)) == sorted(sent)
        time.sleep(1)
        assert answers.empty()  # no second answer
    finally:
        terminal.close()
        for member in group:
            member.close()


def _answered(answers: queue.Queue[Incoming], count: int) -> list[str]:
    return sorted(decode(AckMessage, answers.get(timeout=WAIT_S).payload).results[0].rating_id for _ in range(count))


def _send(terminal: MqttLink) -> str:
    rating = Rating(rating_id=uuid.uuid4().hex, seq=1, kind="service", case_ids=[f"C-{uuid.uuid4().hex[:6]}"],
                    score=5, rated_at=now_cst(), clock_synced=True, hall_id="h1", window_id="w1")
    terminal.publish(T.rating("h1-w1"), encode(RatingMessage(v=1, device_id="h1-w1", ratings=[rating])),
                     wait_s=WAIT_S)
    return rating.rating_id

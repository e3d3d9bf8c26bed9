"""Device identity: the production Mosquitto config (mutual TLS, CN as username, %u ACL) with a real collector.

Terminal A must not speak for B, read B's prompts, or get in at all without a
certificate of the device CA that is not revoked; none of those attempts may
leave a row in the collector's store.
"""

from __future__ import annotations

import queue
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcp.agent.runtime import Agent
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.service import Collector
from hcp.collector.store import Store
from hcp.config.schema import AgentConfig, CollectorConfig
from hcp.domain import now_cst
from hcp.pki import Pki, PkiError
from hcp.protocol import AckMessage, PromptMessage, Rating, RatingMessage, Topics, decode, encode
from hcp.sim.broker import TlsBroker
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink, TlsSettings

T = Topics()
WAIT_S = 10


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.init()
    pki.issue_broker(["localhost", "127.0.0.1"])
    for name in ("h1-w1", "h1-w2", "h9-w9", "h1-w3"):
        pki.issue_device(name)
    for name in ("collector", "business"):
        pki.issue_service(name)
    pki.revoke("h1-w3")
    return pki


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> Pki:
    other = Pki(tmp_path_factory.mktemp("foreign"))
    other.init("someone else's CA")
    other.issue_device("h1-w1")
    return other


@pytest.fixture
def tls_broker(tmp_path, pki) -> Iterator[TlsBroker]:
    with TlsBroker(tmp_path / "broker", pki.dir) as running:
        yield running


@pytest.fixture
def collector(tmp_path, tls_broker, pki) -> Iterator[Collector]:
    config = CollectorConfig.model_validate({
        "collector": {"id": "collector"},
        "broker": {"host": "127.0.0.1", "port": tls_broker.port, "ca_file": str(pki.ca_cert_path),
                   "cert_file": str(pki.cert_path("collector")), "key_file": str(pki.key_path("collector"))},
        "data": {"dir": str(tmp_path / "data")}, "policy": {"preset": "ulanqab"}})
    service = Collector(config)
    with Store.open(service.database, service.profile, load_or_create_key(service.secret_file)) as store:
        for device, window in (("h1-w1", "w1"), ("h1-w2", "w2"), ("h1-w3", "w3")):
            store.register_device(device, "h1", window)
    service.start()
    assert service.wait_connected(WAIT_S)
    yield service
    service.close()


class Client:
    """A test MQTT client holding one identity's certificate (or none)."""

    def __init__(self, broker: TlsBroker, pki: Pki, name: str | None, *topics: str, ca: Path | None = None,
                 client_id: str | None = None, session_expiry_s: int = 0) -> None:
        self.heard: queue.Queue[Incoming] = queue.Queue()
        tls = TlsSettings(ca or pki.ca_cert_path, pki.cert_path(name) if name else None,
                          pki.key_path(name) if name else None)
        settings = LinkSettings("127.0.0.1", broker.port, client_id or f"c-{uuid.uuid4().hex[:8]}",
                                clean_start=not session_expiry_s, session_expiry_s=session_expiry_s,
                                backoff_max_s=0.5, tls=tls)
        self.link = MqttLink(settings, self.heard.put)
        for topic in topics:
            self.link.subscribe(topic)
        self.link.start()

    def close(self) -> None:
        self.link.close()


def rating_message(device_id: str, window_id: str = "w1") -> RatingMessage:
    rating = Rating(rating_id=uuid.uuid4().hex, seq=1, kind="service", case_ids=["C1"], score=5,
                    rated_at=now_cst(), clock_synced=True, hall_id="h1", window_id=window_id)
    return RatingMessage(v=1, device_id=device_id, ratings=[rating])


def rows(collector: Collector) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{collector.database}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT rating_id, device_id FROM ratings").fetchall()
    finally:
        conn.close()


def ack_of(client: Client) -> AckMessage:
    return decode(AckMessage, client.heard.get(timeout=WAIT_S).payload)


def test_a_terminal_speaks_for_itself_only(tls_broker, pki, collector):
    a = Client(tls_broker, pki, "h1-w1", T.ack("h1-w1"), T.ack("h1-w2"))
    try:
        assert a.link.wait_connected(WAIT_S)
        own = rating_message("h1-w1")
        a.link.publish(T.rating("h1-w1"), encode(own), wait_s=WAIT_S)
        assert ack_of(a).results[0].rating_id == own.ratings[0].rating_id  # the control: A itself gets through
        forged = rating_message("h1-w2", "w2")
        a.link.publish(T.rating("h1-w2"), encode(forged))  # the broker refuses it (PUBACK 0x87)
        time.sleep(1.5)
        assert [r[0] for r in rows(collector)] == [own.ratings[0].rating_id]
        assert a.heard.empty()  # nor may A read B's ack
    finally:
        a.close()


def test_a_terminal_cannot_read_another_terminals_prompts(tls_broker, pki, collector):
    a = Client(tls_broker, pki, "h1-w1", T.prompt("h1-w2"), f"{T.prefix}/dev/+/prompt")
    b = Client(tls_broker, pki, "h1-w2", T.prompt("h1-w2"))
    business = Client(tls_broker, pki, "business")
    try:
        for client in (a, b, business):
            assert client.link.wait_connected(WAIT_S)
        time.sleep(0.3)  # subscriptions settle
        prompt = PromptMessage(v=1, prompt_id="p1", case_ids=["C1"], item_code="I1", item_name="营业执照",
                               clerk_id="E1")
        business.link.publish(T.prompt("h1-w2"), encode(prompt), wait_s=WAIT_S)
        assert b.heard.get(timeout=WAIT_S).topic == T.prompt("h1-w2")
        time.sleep(0.5)
        assert a.heard.empty()
    finally:
        for client in (a, b, business):
            client.close()


def test_a_terminal_cannot_publish_prompts_or_forge_acks(tls_broker, pki, collector):
    a = Client(tls_broker, pki, "h1-w1")
    b = Client(tls_broker, pki, "h1-w2", T.prompt("h1-w2"), T.ack("h1-w2"))
    try:
        assert a.link.wait_connected(WAIT_S) and b.link.wait_connected(WAIT_S)
        time.sleep(0.3)
        a.link.publish(T.prompt("h1-w2"), b"{}")
        a.link.publish(T.ack("h1-w2"), encode(AckMessage(v=1)))
        time.sleep(1.0)
        assert b.heard.empty()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("who", ["no certificate", "revoked", "foreign CA"])
def test_no_way_in_without_a_valid_certificate(tls_broker, pki, foreign, collector, who):
    if who == "no certificate":
        client = Client(tls_broker, pki, None)
    elif who == "revoked":
        client = Client(tls_broker, pki, "h1-w3")
    else:  # A's name, signed by another CA; the client trusts the broker's real CA
        client = Client(tls_broker, foreign, "h1-w1", ca=pki.ca_cert_path)
    try:
        assert not client.link.wait_connected(3)
    finally:
        client.close()
    assert rows(collector) == []


def test_binding_and_registration_with_tls_identities(tls_broker, pki, collector):
    a = Client(tls_broker, pki, "h1-w1", T.ack("h1-w1"))
    stranger = Client(tls_broker, pki, "h9-w9", T.ack("h9-w9"))  # a valid certificate, never registered
    try:
        assert a.link.wait_connected(WAIT_S) and stranger.link.wait_connected(WAIT_S)
        time.sleep(0.3)
        a.link.publish(T.rating("h1-w1"), encode(rating_message("h1-w1", window_id="w2")), wait_s=WAIT_S)
        result = ack_of(a).results[0]
        assert result.outcome == "rejected" and "window_id w2" in result.reason
        stranger.link.publish(T.rating("h9-w9"), encode(rating_message("h9-w9")), wait_s=WAIT_S)
        refused = ack_of(stranger)  # refused whole: the terminal keeps its ratings until it is registered
        assert refused.results == [] and "not registered" in refused.error and refused.first_rating_id
        assert [r[1] for r in rows(collector)] == ["h1-w1"]  # the mis-bound one, kept as rejected
    finally:
        a.close()
        stranger.close()


def test_a_terminal_cannot_take_the_collectors_client_id(tls_broker, pki, collector):
    """A's certificate asking for client id "collector": the broker makes it h1-w1, so the collector is
    never knocked off, and A and B both keep getting their ratings answered."""
    drops = collector._generation  # counts the collector's lost connections
    a = Client(tls_broker, pki, "h1-w1", T.ack("h1-w1"), client_id="collector")
    b = Client(tls_broker, pki, "h1-w2", T.ack("h1-w2"), client_id="h1-w2")
    try:
        assert a.link.wait_connected(WAIT_S) and b.link.wait_connected(WAIT_S)
        time.sleep(0.3)
        for _ in range(5):
            for client, device, window in ((a, "h1-w1", "w1"), (b, "h1-w2", "w2")):
                sent = rating_message(device, window)
                client.link.publish(T.rating(device), encode(sent), wait_s=WAIT_S)
                assert ack_of(client).results[0].rating_id == sent.ratings[0].rating_id
            time.sleep(0.2)
        assert collector._generation == drops
        assert collector.wait_connected(0)
    finally:
        a.close()
        b.close()


def test_a_terminal_cannot_take_another_terminals_session(tls_broker, pki, collector):
    """A prompt queued in B's persistent session while B is away survives A connecting with B's
    client id and a clean start (which would have thrown B's session away)."""
    b = Client(tls_broker, pki, "h1-w2", T.prompt("h1-w2"), client_id="h1-w2", session_expiry_s=300)
    business = Client(tls_broker, pki, "business")
    try:
        assert b.link.wait_connected(WAIT_S) and business.link.wait_connected(WAIT_S)
        time.sleep(0.3)
        b.close()  # away: its session keeps its subscription and queues for it
        prompt = PromptMessage(v=1, prompt_id="p-away", case_ids=["C1"], item_code="I1", item_name="营业执照",
                               clerk_id="E1")
        business.link.publish(T.prompt("h1-w2"), encode(prompt), wait_s=WAIT_S)
        a = Client(tls_broker, pki, "h1-w1", client_id="h1-w2")  # clean start, no session
        assert a.link.wait_connected(WAIT_S)
        time.sleep(0.5)
        a.close()
        b = Client(tls_broker, pki, "h1-w2", client_id="h1-w2", session_expiry_s=300)
        heard = b.heard.get(timeout=WAIT_S)
        assert heard.topic == T.prompt("h1-w2") and decode(PromptMessage, heard.payload).prompt_id == "p-away"
    finally:
        b.close()
        business.close()


def test_shipped_clients_use_their_certificates_cn_as_client_id(tmp_path, pki, collector):
    assert collector._link.settings.client_id == "collector"
    config = CollectorConfig.model_validate({
        "collector": {"id": "collector-1"},
        "broker": {"host": "127.0.0.1", "port": 1, "ca_file": str(pki.ca_cert_path),
                   "cert_file": str(pki.cert_path("collector")), "key_file": str(pki.key_path("collector"))},
        "data": {"dir": str(tmp_path / "other")}, "policy": {"preset": "ulanqab"}})
    assert Collector(config)._link_settings().client_id == "collector"  # the CN, not collector.id
    terminal = AgentConfig.model_validate({
        "device": {"id": "h1-w1", "hall_id": "h1", "window_id": "w1"},
        "broker": {"host": "127.0.0.1", "port": 1, "ca_file": str(pki.ca_cert_path),
                   "cert_file": str(pki.cert_path("h1-w1")), "key_file": str(pki.key_path("h1-w1"))},
        "data": {"dir": str(tmp_path / "agent")}})
    with Agent(terminal, []) as agent:
        assert agent.link.settings.client_id == "h1-w1"


def test_pki_refuses_service_names_and_reissue(pki):
    with pytest.raises(PkiError, match="service identity"):
        pki.issue_device("collector")
    with pytest.raises(PkiError, match="already has a valid certificate"):
        pki.issue_device("h1-w1")
    assert (pki.key_path("h1-w1").stat().st_mode & 0o777) == 0o600
    assert any(i.name == "h1-w3" and i.revoked_at for i in pki.issued())


def test_business_tools_reach_the_tls_broker_with_c_or_flags(tmp_path, tls_broker, pki, collector, capsys):
    """hcp cases and hcp prompt with the business identity, from -c (a [broker] section) or the TLS flags."""
    from hcp.cli import main

    config = tmp_path / "business.toml"
    config.write_text(f'[broker]\nhost = "127.0.0.1"\nport = {tls_broker.port}\nca_file = "{pki.ca_cert_path}"\n'
                      f'cert_file = "{pki.cert_path("business")}"\nkey_file = "{pki.key_path("business")}"\n')
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"case_id": "C-TLS-1", "hall_id": "h1", "window_id": "w1", "item_code": "001", '
                     '"item_name": "个体工商户设立登记", "clerk_id": "E1", "intake": "ok", '
                     f'"completed_at": "{now_cst().isoformat()}"}}\n')
    assert main(["cases", str(cases), "-c", str(config)]) == 0
    assert "C-TLS-1\tstored" in capsys.readouterr().out
    terminal = Client(tls_broker, pki, "h1-w1", T.prompt("h1-w1"))
    try:
        assert terminal.link.wait_connected(WAIT_S)
        terminal.link.publish(T.status("h1-w1"), b'{"v":1,"device_id":"h1-w1","state":"online"}', retain=True,
                              wait_s=WAIT_S)
        flags = ["--broker", f"127.0.0.1:{tls_broker.port}", "--ca-file", str(pki.ca_cert_path),
                 "--cert-file", str(pki.cert_path("business")), "--key-file", str(pki.key_path("business"))]
        assert main(["prompt", "h1-w1", "--case", "C-TLS-1", "--item-code", "001", "--item-name", "设立登记",
                     "--clerk", "E1", *flags]) == 0
        assert "prompted h1-w1" in capsys.readouterr().out
        assert decode(PromptMessage, terminal.heard.get(timeout=WAIT_S).payload).case_ids == ["C-TLS-1"]
    finally:
        terminal.close()

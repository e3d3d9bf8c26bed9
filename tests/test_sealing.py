"""Sealed applicant fields: HPKE to the collector's key, through a real Mosquitto and a real collector.

While the collector is offline the broker keeps case records in its
persistence file; sealed, they hold no raw ID or phone number there.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from hcp.cli import main
from hcp.collector.channels import Contacts
from hcp.collector.exc import SealError
from hcp.collector.pseudonym import Pseudonymizer, load_or_create_key
from hcp.collector.sealing import SealKey, open_case, seal, seal_key_path
from hcp.collector.service import Collector
from hcp.collector.store import Store
from hcp.config.schema import CollectorConfig
from hcp.domain import CST
from hcp.exc import ProtocolError
from hcp.protocol import CaseRecord, Topics, decode
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink

T = Topics()
WAIT_S = 10
NOON = datetime(2024, 5, 6, 12, 0, tzinfo=CST)
ID, PHONE = "110101199003071234", "13800138000"

# The test vector of docs/protocol.md ("Sealed applicant fields").
VECTOR_PRIVATE = "MC4CAQAwBQYDK2VuBCIEIEiTqL6ZD0sWtyR3Uu6Yjv0P6wbfbgRp3Pa9sYdJq5pt"
VECTOR_SEALED = "u0wmOiS+iMC8jJrsPgV72C6KcBRWPIuCeElnKl0jhVAxtgWY27z3sP/zckf0+5I+8Mo7qwfcFdnP8iPiF7FaQUaX"


def record(case_id: str, **fields: str) -> dict:
    return {"case_id": case_id, "hall_id": "h1", "window_id": "w1", "item_code": "i1", "item_name": "x",
            "clerk_id": "k1", "intake": "ok", "completed_at": NOON.isoformat(), **fields}


@pytest.fixture
def key(tmp_path) -> SealKey:
    return SealKey.load_or_create(tmp_path / "collector-seal.key")


def test_a_sealed_value_opens_only_for_its_field_and_case(key, tmp_path):
    assert (tmp_path / "collector-seal.key").stat().st_mode & 0o777 == 0o600
    sealed = seal(ID, "applicant_id", "C1", key.public_bytes)
    assert key.open(sealed, "applicant_id", "C1") == ID
    assert sealed != seal(ID, "applicant_id", "C1", key.public_bytes)  # a fresh ephemeral key each time
    for field, case_id in (("applicant_phone", "C1"), ("applicant_id", "C2")):
        with pytest.raises(SealError, match=rf"^{field}_sealed: does not open"):
            key.open(sealed, field, case_id)
    other = SealKey.load_or_create(tmp_path / "other.key")
    with pytest.raises(SealError, match="applicant_id_sealed"):
        other.open(sealed, "applicant_id", "C1")
    assert SealKey.load_or_create(tmp_path / "collector-seal.key").public_bytes == key.public_bytes  # kept


def test_plain_and_sealed_for_one_field_or_an_unusable_value_is_refused_by_name(key):
    both = CaseRecord.model_validate(record("C1", applicant_id=ID,
                                            applicant_id_sealed=seal(ID, "applicant_id", "C1", key.public_bytes)))
    with pytest.raises(SealError, match=r"^applicant_id: given both plain and sealed"):
        open_case(both, key)
    not_a_phone = CaseRecord.model_validate(record(
        "C1", applicant_phone_sealed=seal("call me", "applicant_phone", "C1", key.public_bytes)))
    with pytest.raises(SealError) as err:
        open_case(not_a_phone, key)
    assert str(err.value) == "applicant_phone_sealed: the opened value is not a valid applicant_phone"
    with pytest.raises(ProtocolError, match="applicant_id_sealed"):
        decode(CaseRecord, json.dumps(record("C1", applicant_id_sealed="not base64!")))


def test_the_documented_vector_opens():
    """docs/protocol.md's vector, so a business system can check its implementation against ours."""
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    opened = SealKey(load_der_private_key(base64.b64decode(VECTOR_PRIVATE), None))
    assert opened.open(VECTOR_SEALED, "applicant_id", "C20261122-0007") == "370102199001011234"


# ---- through the broker and the collector ------------------------------------------------------------


@pytest.fixture
def collector_config(tmp_path, broker) -> CollectorConfig:
    return CollectorConfig.model_validate({
        "collector": {"id": f"collector-{uuid.uuid4().hex[:8]}"},
        "broker": {"host": broker.host, "port": broker.port},
        "data": {"dir": str(tmp_path / "data")}, "policy": {"preset": "ulanqab"}})


class Business:
    """The business system's side: publishes case records, hears the answers."""

    def __init__(self, broker) -> None:
        self.answers: queue.Queue[Incoming] = queue.Queue()
        self.link = MqttLink(LinkSettings(broker.host, broker.port, f"b-{uuid.uuid4().hex[:8]}", clean_start=True),
                             self.answers.put)
        self.link.subscribe(T.cases_ack)
        self.link.start()
        assert self.link.wait_connected(WAIT_S)

    def send(self, *records: dict) -> None:
        self.link.publish(T.cases, json.dumps({"v": 1, "cases": list(records)}).encode(), qos=1, wait_s=WAIT_S)

    def results(self) -> dict[str, dict]:
        return {r["case_id"]: r for r in json.loads(self.answers.get(timeout=WAIT_S).payload)["results"]}


@pytest.fixture
def business(broker) -> Iterator[Business]:
    side = Business(broker)
    yield side
    side.link.close()


def run_collector(config: CollectorConfig) -> Collector:
    collector = Collector(config)
    collector.start()
    assert collector.wait_connected(WAIT_S)
    return collector


def test_sealed_cases_wait_in_the_broker_without_raw_data_and_are_stored_as_plain_ones(
        collector_config, broker, business):
    collector = run_collector(collector_config)  # its persistent session now queues while it is away
    public = SealKey.load_or_create(seal_key_path(collector.secret_file)).public_bytes
    collector.close()
    plain = "220101199001011111"  # the control: a plain id is in the file, so the check can fail
    business.send(record("S1", applicant_id_sealed=seal(ID, "applicant_id", "S1", public),
                         applicant_phone_sealed=seal(PHONE, "applicant_phone", "S1", public)),
                  record("P1", applicant_id=plain),
                  record("B1", applicant_id=plain, applicant_id_sealed=seal(plain, "applicant_id", "B1", public)),
                  record("X1", applicant_phone_sealed=seal(PHONE, "applicant_phone", "S1", public)))
    business.link.close()
    broker.stop()  # writes the persistence file
    kept = (broker.workdir / "mosquitto.db").read_bytes()
    assert plain.encode() in kept and b"S1" in kept
    assert ID.encode() not in kept and PHONE.encode() not in kept
    broker.start()
    again = Business(broker)
    collector = run_collector(collector_config)
    try:
        results = again.results()
    finally:
        collector.close()
        again.link.close()
    assert {c: r["outcome"] for c, r in results.items()} == {"S1": "stored", "P1": "stored", "B1": "rejected",
                                                             "X1": "rejected"}
    assert results["B1"]["reason"].startswith("applicant_id: given both plain and sealed")
    assert results["X1"]["reason"].startswith("applicant_phone_sealed: does not open")  # sealed for S1
    key = load_or_create_key(collector.secret_file)
    with Store.open(collector.database, collector.profile, key) as store:
        row = store._cases(["S1"])["S1"]
        assert row.applicant_key == Pseudonymizer(key)(ID)  # exactly as a plain applicant_id
        assert Contacts(store).phone("S1") == PHONE


def test_seal_key_prints_the_public_key_and_cases_can_seal_with_it(tmp_path, capsys):
    assert main(["seal-key", "--data-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip()
    key = SealKey.load_or_create(tmp_path / "collector-seal.key")
    assert base64.b64decode(printed) == key.public_bytes
    assert main(["seal-key", "--data-dir", str(tmp_path), "--pem"]) == 0
    assert capsys.readouterr().out.startswith("-----BEGIN PUBLIC KEY-----")


def test_hcp_cases_seals_before_sending(collector_config, broker, business, tmp_path):
    collector = run_collector(collector_config)
    try:
        public = base64.b64encode(SealKey.load_or_create(seal_key_path(collector.secret_file)).public_bytes)
        source = tmp_path / "cases.jsonl"
        source.write_text(json.dumps(record("C7", applicant_id=ID, applicant_phone=PHONE)) + "\n")
        done = subprocess.run([sys.executable, "-m", "hcp.cli", "cases", str(source), "--broker",
                               f"{broker.host}:{broker.port}", "--seal", public.decode()],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split("\t")[:2] == ["C7", "stored"]
        assert business.results()["C7"]["outcome"] == "stored"
    finally:
        collector.close()

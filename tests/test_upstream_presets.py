"""Upstream presets: each format sent to a local platform that checks it the way the live one would.

Every receiver is a real HTTP server on 127.0.0.1 that validates each field, code, envelope and signature
(SM2 with gmssl) of its preset and refuses what that platform refuses; the store is a real SQLite file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from test_collector_service import T, _store, cases, outcomes, start, terminal  # noqa: F401 - fixtures

from hcp.cli import main
from hcp.collector.channel_services import preset_problem
from hcp.collector.channels import Channels, Entry
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.service import Collector
from hcp.collector.upstream import Backoff, Forwarder
from hcp.collector.upstream_codes import shipped_tables
from hcp.collector.upstream_format import PresetAdapter, PresetSettings, credential_text
from hcp.collector.upstream_identity import Identities
from hcp.collector.upstream_preset import load_preset
from hcp.collector.upstream_sign import HmacSigner, Sm2Signer, signed_text, sm2_public_key, sm2_verify
from hcp.config.channels import UpstreamSection
from hcp.config.schema import CollectorConfig
from hcp.domain import Channel
from hcp.protocol import Rating, RatingMessage
from tests.channel_support import NOW, Receiver, case, open_store

SECRET = b"upstream-shared-secret-for-tests"
SM2_KEY = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"
APP_ID = "hcp-370102"
CERT, NAME = "370102199001011234", "张三丰"
TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "upstream.md"
PRESETS = ("national-table9-2020", "province-sm2-envelope-v1", "province-params-v1")


# -- the platforms ------------------------------------------------------------------


class Platform:
    """Validates like the live platform; keeps each accepted record once, in arrival order."""

    def __init__(self) -> None:
        self.accepted: list[str] = []  # case ids in arrival order
        self.refused: list[str] = []
        self.busy = 0  # answer 503 to this many requests first

    def __call__(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        if self.busy:
            self.busy -= 1
            return 503, {}
        try:
            record = self.open(body, headers)
            self.check(record)
        except AssertionError as err:
            why = str(err).splitlines()[0]  # pytest adds the expression's values below
            self.refused.append(why)
            return self.no(why)
        key = record[self.key]
        if key not in self.accepted:
            self.accepted.append(key)
        return self.yes()

    #: The channel code each test case must arrive with: P0 window, P2 qr, P3 hotline, P4 paper, D0 default.
    channel_codes: ClassVar[dict[str, str]] = {}

    def common(self, r: dict, *, channels: range) -> None:
        assert r[self.satisfaction] in {"1", "2", "3", "4", "5"}, "satisfaction code"
        assert int(r[self.channel]) in channels, f"channel code {r[self.channel]}"
        assert self.channel_codes.get(r[self.key], r[self.channel]) == r[self.channel], "channel mapping"
        assert TIME.match(r[self.rated]), "time format"


class Table9(Platform):
    key, satisfaction, channel, rated = "办件编号", "满意度代码", "评价渠道", "评价时间"
    channel_codes: ClassVar = {"P0": "4", "P2": "3", "P3": "8", "P4": "9", "D0": "7"}
    names: ClassVar = {"1": "非常满意", "2": "满意", "3": "基本满意", "4": "不满意", "5": "非常不满意"}  # A.8
    fields: ClassVar = {"办件编号", "评价渠道", "评价人", "评价时间", "评价次数", "满意度", "满意度代码", "文字评价",
                        "行政区划"}

    def open(self, body: dict, headers: dict) -> dict:
        text = signed_text(headers["x-timestamp"], headers["x-nonce"], headers["_raw"])
        expected = base64.b64encode(hmac.new(SECRET, text, hashlib.sha256).digest()).decode()
        assert hmac.compare_digest(expected, headers["x-signature"]), "signature"
        return body

    def check(self, r: dict) -> None:
        assert set(r) <= self.fields, f"unknown fields {set(r) - self.fields}"
        self.common(r, channels=range(1, 10))
        assert r["满意度"] == self.names[r["满意度代码"]], "满意度 does not match its code"
        assert r["评价次数"] in {"1", "2"} and r["评价人"] == NAME
        assert re.match(r"^\d{6}(\d{6})?$", r["行政区划"]), "行政区划"
        assert r["满意度代码"] not in {"4", "5"} or r.get("文字评价"), "差评 without 文字评价"

    def yes(self):
        return 200, {"message": "ok"}

    def no(self, why):
        return 422, {"message": why}


class ProvinceFields(Platform):
    satisfaction, channel, rated = "satisfaction", "pf", "assessTime"

    def check_person(self, r: dict) -> None:
        assert r["certKey"] == CERT and r["userName"] == NAME, "identity"
        assert r["userProp"] in {"1", "2"}, "userProp"
        assert r["assessNumber"] in {"1", "2"}, "assessNumber"
        assert TIME.match(r["acceptDate"]), "acceptDate"
        assert r["satisfaction"] not in {"1", "2"} or r.get("evalDetail") or r.get("writingEvaluation"), \
            "差评 without evalDetail or writingEvaluation"


class Sm2Envelope(ProvinceFields):
    key = "projectNo"
    channel_codes: ClassVar = {"P0": "4", "P2": "3", "P3": "5", "P4": "5", "D0": "7"}

    def __init__(self, public_key: str) -> None:
        super().__init__()
        self.public_key = public_key

    def open(self, body: dict, headers: dict) -> dict:
        assert set(body) == {"appId", "timestamp", "sign", "data"}, "envelope"
        assert body["appId"] == APP_ID, "appId"
        assert abs(int(body["timestamp"]) / 1000 - time.time()) < 300, "timestamp"
        assert sm2_verify(self.public_key, body["sign"], credential_text(body["appId"], body["timestamp"])), \
            "sign"
        return json.loads(body["data"])

    def check(self, r: dict) -> None:
        self.common(r, channels=range(1, 8))
        self.check_person(r)
        assert r["proStatus"] == "3" and r["userPageType"] == "111" and r["serviceNumber"] == "1"
        assert re.match(r"^\d{3}$", r["dataSource"]), "dataSource"
        assert r["deptCode"] and r["taskCode"] and r["taskName"], "department and item"
        assert r.get("promisetime", "0").isdigit(), "promisetime"

    def yes(self):
        return 200, {"code": "200", "msg": "成功"}

    def no(self, why):
        return 200, {"code": "400", "msg": why}


class Params(ProvinceFields):
    key = "projectno"
    channel_codes: ClassVar = {"P0": "4", "P2": "3", "P3": "5", "P4": "5", "D0": "1"}  # pf 1-5: a default is 1

    def open(self, body: dict, headers: dict) -> dict:
        assert Table9.open(self, body, headers) is body and set(body) == {"params"}, "envelope"
        return body["params"]

    def check(self, r: dict) -> None:
        self.common(r, channels=range(1, 6))
        self.check_person(r)
        assert r.get("promisetime") in {None, "1", "2"}, "promisetime"
        assert re.match(r"^\d{6}(\d{6})?$", r["areacode"]), "areacode"

    def yes(self):
        return 200, {"status": {"code": 200}, "custom": {"code": 1, "text": "推送成功"}}

    def no(self, why):
        return 200, {"status": {"code": 200}, "custom": {"code": 0, "text": why}}


def _platform(name: str) -> Platform:
    return {"national-table9-2020": Table9, "province-params-v1": Params}.get(name, Sm2Envelope)(
        *([sm2_public_key(SM2_KEY)] if name == "province-sm2-envelope-v1" else []))


def _adapter(name: str, url: str, store, *, key: str = SM2_KEY) -> PresetAdapter:
    preset = load_preset(name)
    signer = Sm2Signer(key) if preset.signing_alg == "sm2" else HmacSigner(SECRET)
    settings = PresetSettings(url, APP_ID, "101", "370102", timeout_s=2)
    return PresetAdapter(preset, settings, signer, Identities(store))


# -- the records ----------------------------------------------------------------------


def _case(case_id: str, **extra):
    details = dict(dept_code="11370102MB2850", clerk_name="李四", accepted_at=NOW - timedelta(days=2),
                   promised_days=0 if case_id.endswith("0") else 5, applicant_type="person",
                   applicant_name=NAME, applicant_id=CERT)
    return case(case_id).model_copy(update={**details, **extra})


def _add(store, cases) -> None:
    results = store.add_cases(cases, NOW)
    Identities(store).keep(cases, results, NOW)


def _window(store, case_id: str, score: int, reasons=()) -> None:
    if store.device("hall01-w03") is None:
        store.register_device("hall01-w03", "hall01", "w03")
    rating = Rating(rating_id=str(uuid.uuid4()), seq=1, kind="service", case_ids=[case_id], score=score,
                    rated_at=NOW, clock_synced=True, reasons=list(reasons))
    [answer] = store.ingest("hall01-w03", RatingMessage(v=1, device_id="hall01-w03", ratings=[rating]), NOW)
    assert answer.outcome == "accepted", answer


def _records(store) -> list[str]:
    """Cases P0-P5 rated through several channels, P6 a 差评 without a reason; in rating order."""
    _add(store, [_case(f"P{i}") for i in range(7)])
    _window(store, "P0", 5)
    _window(store, "P1", 1, ["办事流程"])
    channels = Channels(store)
    for case_id, score, channel in (("P2", 4, Channel.QR), ("P3", 2, Channel.HOTLINE), ("P4", 3, Channel.PAPER)):
        reasons = ("服务态度",) if score < 3 else ()
        assert channels.enter(Entry(case_id, score, channel, NOW, reasons), NOW).outcome == "accepted"
    _window(store, "P5", 5)
    _window(store, "P6", 2)  # a terminal may send a 差评 without a reason; the platforms refuse it
    _add(store, [_case("D0", completed_at=NOW - timedelta(days=9))])
    assert Lifecycle(store).run_defaults(NOW).defaulted == 1  # unrated past the period: a system default
    return ["P0", "P1", "P2", "P3", "P4", "P5", "D0"]


def _drain(forwarder: Forwarder) -> None:
    deadline, step = time.monotonic() + 30, 0
    forwarder.run(NOW)
    while forwarder.statuses()["pending"] and time.monotonic() < deadline:
        step += 1
        forwarder.run(NOW + timedelta(seconds=step))  # the forwarder's clock moves past each retry's time


# -- tests ----------------------------------------------------------------------------


def test_every_shipped_preset_loads_and_every_field_is_documented():
    docs = DOCS.read_text("utf-8")
    assert set(PRESETS) <= set(shipped_tables())
    for name in PRESETS:
        preset = load_preset(name)
        assert preset is not None and f"`{name}`" in docs
        missing = [key for key in preset.fields if f"`{key}`" not in docs]
        assert missing == [], f"{name}: fields not in docs/upstream.md: {missing}"
    assert load_preset("national-2020") is None  # a code table, for hcp's own JSON


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_is_taken_by_its_platform_once_in_order(tmp_path, name, caplog):
    caplog.set_level(logging.DEBUG)
    platform = _platform(name)
    with Receiver(platform) as receiver, open_store(tmp_path) as store:
        expected = _records(store)
        forwarder = Forwarder(store, _adapter(name, receiver.url, store), backoff=Backoff(0.001, 0.01))
        _drain(forwarder)
        rows = dict(store._conn.execute("SELECT json_extract(payload, '$.case_ids[0]'), status || ' ' || reason "
                                        "FROM upstream_outbox WHERE kind = 'rating'").fetchall())
        body = json.dumps([r[1] for r in receiver.requests], ensure_ascii=False)
    assert platform.refused == []
    assert platform.accepted == expected  # each once, in rating order
    assert rows["P6"].startswith("rejected not sent: ") and "a 差评 needs a reason or a text" in rows["P6"]
    assert "P6" not in body  # caught before sending
    assert CERT in body or name == "national-table9-2020"  # the identity went upstream, signed
    assert CERT not in caplog.text and NAME not in caplog.text


def test_records_are_sent_once_in_order_across_restarts(tmp_path):
    platform = _platform("province-params-v1")
    with Receiver(platform) as receiver:
        with open_store(tmp_path) as store:
            expected = _records(store)
            platform.busy = 3
            forwarder = Forwarder(store, _adapter("province-params-v1", receiver.url, store),
                                  backoff=Backoff(0.001, 0.01))
            forwarder.run(NOW)  # the first answers are 503: nothing accepted yet
        with open_store(tmp_path) as store:  # a restart
            forwarder = Forwarder(store, _adapter("province-params-v1", receiver.url, store),
                                  backoff=Backoff(0.001, 0.01))
            _drain(forwarder)
            assert forwarder.queue(NOW) == 0
            counts = forwarder.statuses()
    assert platform.accepted == expected
    keys = [r[2]["idempotency-key"] for r in receiver.requests if r[1]["params"]["satisfaction"]]
    assert len(keys) == len(expected) + 3  # the three refused by 503, each sent once more, nothing else
    assert counts == {"pending": 0, "sent": 7, "rejected": 1}


def test_a_refused_record_is_reported_with_its_field_and_not_retried(tmp_path, capsys):
    with Receiver(_platform("province-params-v1")) as receiver, open_store(tmp_path) as store:
        _records(store)
        forwarder = Forwarder(store, _adapter("province-params-v1", receiver.url, store))
        _drain(forwarder)
        sent = len(receiver.requests)
        forwarder.run(NOW + timedelta(days=1))
        assert len(receiver.requests) == sent
        attempts = store._conn.execute("SELECT attempts FROM upstream_outbox WHERE status = 'rejected'").fetchall()
    assert attempts == [(1,)]
    flags = ["--data-dir", str(tmp_path), "--database", str(tmp_path / "collector.sqlite"), "--policy", "ulanqab"]
    assert main(["upstream", *flags]) == 0
    out = capsys.readouterr().out
    assert "evalDetail/writingEvaluation: a 差评 needs a reason or a text" in out
    assert CERT not in out and NAME not in out


def test_a_platform_refuses_a_forged_sm2_signature(tmp_path):
    platform = _platform("province-sm2-envelope-v1")
    with Receiver(platform) as receiver, open_store(tmp_path) as store:
        _add(store, [_case("P0")])
        _window(store, "P0", 5)
        forwarder = Forwarder(store, _adapter("province-sm2-envelope-v1", receiver.url, store,
                                              key=secrets.token_hex(32)))
        _drain(forwarder)
        [(status, reason)] = store._conn.execute("SELECT status, reason FROM upstream_outbox").fetchall()
    assert platform.accepted == [] and platform.refused == ["sign"]
    assert (status, reason) == ("rejected", "code 400: sign")


def test_the_identity_is_sealed_and_erased_after_the_platform_took_the_record(tmp_path):
    platform = _platform("province-sm2-envelope-v1")  # keeps identities 7 days after acceptance
    with Receiver(platform) as receiver, open_store(tmp_path) as store:
        _records(store)
        identities = Identities(store)
        assert identities.get("P0").name == NAME
        assert all(CERT not in str(row) and NAME not in str(row) for row in store.export())
        forwarder = Forwarder(store, _adapter("province-sm2-envelope-v1", receiver.url, store))
        _drain(forwarder)
        assert identities.get("P0") is not None  # within retention
        forwarder.run(NOW + timedelta(days=8))
        left = [r[0] for r in store._conn.execute("SELECT case_id FROM rater_identities")]
        data = b"".join(p.read_bytes() for p in tmp_path.glob("collector.sqlite*"))
    assert left == []  # P6 was refused: final too, so erased with the rest
    assert CERT.encode() not in data and NAME.encode() not in data


def test_the_identity_of_a_case_never_rated_is_erased_after_max_days(tmp_path):
    with open_store(tmp_path) as store:
        _add(store, [_case("N0")])
        adapter = _adapter("province-params-v1", "http://127.0.0.1:9/", store)
        assert adapter.erase_due(NOW + timedelta(days=89)) == 0
        assert adapter.erase_due(NOW + timedelta(days=90)) == 1
        assert Identities(store).get("N0") is None


def test_settings_a_preset_needs_are_named():
    envelope = load_preset("province-sm2-envelope-v1")
    hmac_only = UpstreamSection(url="http://x/", signing="hmac", hmac_secret="s" * 32)
    assert preset_problem(envelope, hmac_only).startswith("upstream.signing: preset province-sm2-envelope-1")
    sm2 = UpstreamSection(url="http://x/", signing="sm2", sm2_private_key=SM2_KEY, data_source="101")
    assert preset_problem(envelope, sm2).startswith("upstream.app_id:")
    unsigned = UpstreamSection(url="http://x/", signing="none")
    assert preset_problem(load_preset("province-params-v1"), unsigned).startswith("upstream.signing:")


@pytest.mark.parametrize(("table", "kept"), [("province-params-v1", True), ("province-example-v1", False)])
def test_the_collector_keeps_an_identity_only_for_a_real_name_preset(tmp_path, broker, terminal, table, kept,  # noqa: F811
                                                                     caplog):
    caplog.set_level(logging.DEBUG)
    config = CollectorConfig.model_validate({
        "collector": {"id": f"collector-{uuid.uuid4().hex[:8]}"}, "broker": {"host": broker.host, "port": broker.port},
        "data": {"dir": str(tmp_path / "data")}, "policy": {"preset": "ulanqab"},
        "upstream": {"url": "http://127.0.0.1:9/", "code_table": table, "hmac_secret": SECRET.decode()}})
    collector = Collector(config)
    start(collector, terminal)
    message = cases("c1")
    message["cases"][0].update(applicant_id=CERT, applicant_name=NAME, area_code="370102")
    assert outcomes(terminal.ask(T.cases, message)) == ["stored"]
    collector.close()
    with _store(collector) as store:
        identity = Identities(store).get("c1")
        assert store._conn.execute("SELECT area_code FROM case_upstream").fetchall() == [("370102",)]
    assert (identity is not None) == kept and (identity is None or (identity.cert, identity.name) == (CERT, NAME))
    data = b"".join(p.read_bytes() for p in collector.database.parent.glob(collector.database.name + "*"))
    assert CERT.encode() not in data and NAME.encode() not in data
    assert CERT not in caplog.text and NAME not in caplog.text


def test_a_platform_quoting_the_identity_in_its_refusal_is_masked(tmp_path, caplog):
    def quoting(path: str, body: dict, headers: dict) -> tuple[int, dict]:
        params = body["params"]
        return 200, {"custom": {"code": 0, "text": f"证件 {params['certKey']} 与姓名 {params['userName']} 不符"}}

    caplog.set_level(logging.DEBUG)
    with Receiver(quoting) as receiver, open_store(tmp_path) as store:
        _add(store, [_case("P0")])
        _window(store, "P0", 5)
        _drain(Forwarder(store, _adapter("province-params-v1", receiver.url, store)))
        [(status, reason)] = store._conn.execute("SELECT status, reason FROM upstream_outbox").fetchall()
    assert (status, reason) == ("rejected", "custom.code 0: 证件 *** 与姓名 *** 不符")
    assert CERT not in caplog.text and NAME not in caplog.text


def test_the_collector_config_builds_the_preset_adapter_the_platform_takes(tmp_path):
    from hcp.collector.channel_services import upstream_adapter
    from hcp.exc import ConfigError

    platform = _platform("province-sm2-envelope-v1")
    with Receiver(platform) as receiver, open_store(tmp_path) as store:
        section = {"url": receiver.url, "code_table": "province-sm2-envelope-v1", "signing": "sm2",
                   "sm2_private_key": SM2_KEY, "app_id": APP_ID, "data_source": "101", "area_code": "370102"}
        adapter = upstream_adapter(CollectorConfig.model_validate({"upstream": section}), store)
        _add(store, [_case("P0")])
        _window(store, "P0", 5)
        _drain(Forwarder(store, adapter))
        without_app = CollectorConfig.model_validate({"upstream": {**section, "app_id": None}})
        with pytest.raises(ConfigError, match=r"^upstream\.app_id: preset province-sm2-envelope-1"):
            upstream_adapter(without_app, store)
    assert platform.accepted == ["P0"] and platform.refused == []

"""Forwarding to the provincial platform: outbox, code tables, signing, and a platform that misbehaves."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import time
from collections import defaultdict
from datetime import timedelta

import pytest

from hcp.collector.channels import Channels, Entry
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.upstream import Backoff, Forwarder, HttpJsonAdapter
from hcp.collector.upstream_codes import load_table, shipped_tables
from hcp.collector.upstream_sign import HmacSigner, Sm2Signer, signed_text, sm2_public_key, sm2_verify
from hcp.domain import Channel, now_cst
from hcp.exc import ConfigError
from tests.channel_support import NOW, Receiver, case, open_store, window_rating

SECRET = b"upstream-shared-secret-for-tests"


def test_code_tables_are_data_and_run_in_opposite_orders():
    assert {"national-2020", "province-example-v1"} <= set(shipped_tables())
    national, province = load_table("national-2020"), load_table("province-example-v1")
    assert [national.score(s) for s in (5, 4, 3, 2, 1)] == ["1", "2", "3", "4", "5"]  # 1 非常满意
    assert [province.score(s) for s in (5, 4, 3, 2, 1)] == ["5", "4", "3", "2", "1"]  # 1 非常不满意
    assert (province.channel("qr"), province.channel("window"), province.channel("system-default")) == ("3", "4", "7")
    with pytest.raises(ConfigError, match="unknown table"):
        load_table("atlantis-1")


def test_adapter_renames_fields_and_maps_codes():
    adapter = HttpJsonAdapter("http://x/", load_table("province-example-v1"),
                              fields={"id": "evaluateId", "satisfaction": "satisfaction_code"})
    body = json.loads(adapter.body({"id": "r1", "record_type": "rating", "score": 1, "channel": "qr",
                                    "kind": "service"}))
    assert body == {"evaluateId": "r1", "record_type": "rating", "satisfaction_code": "1", "channel": "3",
                    "kind": "1", "code_table": "province-example-1"}


def test_sm2_signer_signs_what_a_province_verifies():
    private = secrets.token_hex(32)
    headers = Sm2Signer(private).headers(b'{"a":1}')
    text = signed_text(headers["X-Timestamp"], headers["X-Nonce"], b'{"a":1}')
    assert headers["X-Sign-Alg"] == "SM2-SM3"
    assert sm2_verify(sm2_public_key(private), headers["X-Signature"], text)
    assert not sm2_verify(sm2_public_key(private), headers["X-Signature"], text + b"x")


def _hmac_ok(headers: dict) -> bool:
    text = signed_text(headers["x-timestamp"], headers["x-nonce"], headers["_raw"])
    expected = base64.b64encode(hmac.new(SECRET, text, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, headers["x-signature"])


class Platform:
    """Accepts, rejects, times out and fails at random; stores each record at most once (idempotency key)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.stored: dict[str, int] = defaultdict(int)
        self.answered: dict[str, str] = {}  # id -> the definitive answer the client certainly received
        self.after_answer: list[str] = []

    def __call__(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        key = headers["idempotency-key"]
        if key in self.answered:
            self.after_answer.append(key)
        if not _hmac_ok(headers):
            return 401, {"message": "bad signature"}
        roll = self.random.random()
        if roll < 0.15:
            time.sleep(0.5)  # longer than the client's timeout: the answer is lost
            return self._store(key, body, delivered=False)
        if roll < 0.35:
            return 503, {"message": "busy"}
        if body.get("channel") == "6":  # this platform takes no hotline ratings
            self.answered[key] = "rejected"
            return 422, {"message": "渠道编码 6 不受理"}
        return self._store(key, body, delivered=True)

    def _store(self, key: str, body: dict, *, delivered: bool) -> tuple[int, dict]:
        first = key not in self.stored
        self.stored[key] += first
        if delivered:
            self.answered[key] = "sent"
        return (200 if first else 409), {"message": "ok" if first else "duplicate"}


def _records(store) -> None:
    cases = [case(f"U{i}") for i in range(24)] + [case(f"D{i}", completed=NOW - timedelta(days=9)) for i in range(4)]
    store.add_cases(cases, NOW)
    channels = Channels(store)
    for i in range(24):
        if i % 3 == 0:
            window_rating(store, f"U{i}", 1 + i % 5)
        else:
            channel = Channel.HOTLINE if i % 3 == 1 else Channel.PAPER
            channels.enter(Entry(f"U{i}", 1 + i % 5, channel, NOW, ("服务效率",) if i % 5 < 2 else ()), NOW)
    Lifecycle(store).run_defaults(NOW)
    rating = store._conn.execute("SELECT rating_id FROM ratings WHERE score = 1 AND channel = 'window'").fetchone()[0]
    Lifecycle(store).exclude(rating, "malicious", decided_by="reviewer", reason="verified", at=NOW)


def test_every_record_ends_sent_or_rejected_none_twice(tmp_path):
    platform = Platform(seed=7)
    with Receiver(platform) as receiver, open_store(tmp_path) as store:
        _records(store)
        adapter = HttpJsonAdapter(receiver.url, load_table("province-example-v1"), HmacSigner(SECRET), timeout_s=0.2)
        forwarder = Forwarder(store, adapter, backoff=Backoff(base_s=0.001, cap_s=0.01))
        forwarder.run(now_cst())
        deadline = time.monotonic() + 60
        while forwarder.statuses()["pending"] and time.monotonic() < deadline:
            forwarder.run(now_cst())
            time.sleep(0.01)
        statuses = forwarder.statuses()
        rows = store._conn.execute("SELECT record_id, kind, status, reason FROM upstream_outbox").fetchall()
        # a restart queues nothing again
        assert Forwarder(store, adapter).queue(now_cst()) == 0
    assert statuses["pending"] == 0 and statuses["sent"] + statuses["rejected"] == len(rows)
    kinds = {kind for _id, kind, _s, _r in rows}
    assert kinds == {"rating", "exclusion"}
    assert sum(1 for r in rows if r[0].startswith("default:")) == 4
    assert len(rows) == 24 + 4 + 1
    for record_id, _kind, status, reason in rows:
        if status == "rejected":
            assert "渠道编码 6 不受理" in reason
        else:
            assert platform.stored[record_id] == 1
    assert all(count == 1 for count in platform.stored.values())
    assert platform.after_answer == []  # nothing was sent again once its answer had arrived
    assert any(s == "rejected" for _i, _k, s, _r in rows)

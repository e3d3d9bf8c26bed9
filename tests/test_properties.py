"""Property tests: no input makes a parser raise anything but the project's own parse error.

For each parser and decoder (MQTT payloads, serial frames, the config loader,
the receipt token) hypothesis generates hostile input and checks two things:
only the named error escapes, and that error says what was wrong; and good
input survives a round trip unchanged.
"""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from hcp.config.schema import AgentConfig, CollectorConfig, load_config
from hcp.db import json_list
from hcp.device.exc import FrameError
from hcp.device.frames import MAX_PAYLOAD, STX, Frame, FrameDecoder, encode_frame
from hcp.domain import Kind, Outcome, utc_text
from hcp.exc import ConfigError, ProtocolError
from hcp.protocol import (
    AckMessage,
    AckResult,
    CasesAckMessage,
    CasesMessage,
    PromptMessage,
    Rating,
    RatingMessage,
    SettingsMessage,
    StatusMessage,
    decode,
    encode,
)
from hcp.ui.exc import TokenError
from hcp.ui.receipt import make_token, verify

MODELS = [RatingMessage, AckMessage, PromptMessage, StatusMessage, SettingsMessage, CasesMessage,
          CasesAckMessage]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
ident = st.text(string.ascii_letters + string.digits + "._:-", min_size=1, max_size=64)
aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 30),
                     timezones=st.sampled_from([UTC, datetime.now().astimezone().tzinfo]))


def _near_valid_rating() -> st.SearchStrategy[dict]:
    """A rating message as JSON with fields that are right, wrong or missing: the interesting edge."""
    rating = st.fixed_dictionaries({
        "rating_id": st.sampled_from(["0190f0a4-1111-7000-8000-000000000001", "x", "", 5]),
        "seq": st.sampled_from([1, 0, -1, "1", 2**63, 1.5]),
        "kind": st.sampled_from(["service", "hall", "other", None]),
        "case_ids": st.sampled_from([["C1"], [], ["bad id"], "C1", [1]]),
        "score": st.sampled_from([1, 5, 0, 6, "5", True, 3.0]),
        "rated_at": st.sampled_from(["2024-05-01T10:00:00+08:00", "2024-05-01T10:00:00", "yesterday", 0]),
        "clock_synced": st.sampled_from([True, 1, "yes"]),
    }, optional={"reasons": st.sampled_from([[], ["办事效率"], [""], "x"]), "uptime_s": st.sampled_from([0, -1.0]),
                 "surprise": json_values})
    return st.fixed_dictionaries({"v": st.sampled_from([1, 2, "1"]), "device_id": st.sampled_from(["t1", "", "a b"]),
                                  "ratings": st.lists(rating, max_size=3)})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@SETTINGS
@given(payload=st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | json_values.map(lambda v: json.dumps(v).encode()) | _near_valid_rating().map(lambda v: json.dumps(v).encode()))
@example(payload=b"")
@example(payload=b"[" * 5000)
@example(payload=b'{"v":1,"ratings":' + b"[" * 3000 + b"]" * 3000 + b"}")
@example(payload=b"\xff\xfe")
def test_decode_raises_only_protocol_error(model, payload: bytes) -> None:
    try:
        decode(model, payload)
    except ProtocolError as err:
        assert err.field and err.problem  # it names where and what
        assert str(err)


def test_an_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        decode(RatingMessage, b" " * (256 * 1024 + 1))


ratings = st.builds(
    Rating, rating_id=st.uuids().map(str), seq=st.integers(1, 2**53), kind=st.sampled_from(list(Kind)),
    case_ids=st.lists(ident, max_size=5), score=st.integers(1, 5), rated_at=aware, clock_synced=st.booleans(),
    prompt_id=st.none() | ident, hall_id=st.none() | ident, window_id=st.none() | ident,
    clerk_id=st.none() | ident, item_code=st.none() | ident,
    reasons=st.lists(st.text(min_size=1, max_size=40), max_size=3), boot_id=st.none() | st.text(max_size=64),
    uptime_s=st.none() | st.floats(0, 1e9))


@SETTINGS
@given(device=ident, batch=st.lists(ratings, min_size=1, max_size=5))
def test_a_valid_rating_message_round_trips(device: str, batch: list[Rating]) -> None:
    message = RatingMessage(v=1, device_id=device, ratings=batch)
    assert decode(RatingMessage, encode(message)) == message


@SETTINGS
@given(results=st.lists(st.builds(AckResult, rating_id=st.text(max_size=40), outcome=st.sampled_from(list(Outcome)),
                                  reason=st.text(max_size=40)), max_size=5),
       error=st.none() | st.text(max_size=40))
def test_a_valid_ack_round_trips(results: list[AckResult], error: str | None) -> None:
    message = AckMessage(v=1, results=results, error=error)
    assert decode(AckMessage, encode(message)) == message


@SETTINGS
@given(prompt_id=ident, cases=st.lists(ident, min_size=1, max_size=5), item=ident, name=st.text(max_size=200),
       clerk=ident, expires=st.none() | aware)
def test_a_valid_prompt_round_trips(prompt_id, cases, item, name, clerk, expires) -> None:
    message = PromptMessage(v=1, prompt_id=prompt_id, case_ids=cases, item_code=item, item_name=name,
                            clerk_id=clerk, expires_at=expires)
    assert decode(PromptMessage, encode(message)) == message


# ---- serial frames ------------------------------------------------------------------

def _decode_all(data: bytes, chunks: list[int]) -> list:
    decoder = FrameDecoder()
    out, at = [], 0
    for size in chunks:
        out += decoder.feed(data[at:at + size])
        at += size
    out += decoder.feed(data[at:])
    while decoder.pending:
        out += decoder.expire()
    return out


@SETTINGS
@given(data=st.binary(max_size=2000), chunks=st.lists(st.integers(0, 64), max_size=20))
@example(data=bytes([STX, 1, 0x10, 0xFF, 0xFF]), chunks=[])
@example(data=bytes([STX]) * 50, chunks=[1] * 10)
def test_the_frame_decoder_never_raises_and_accounts_for_every_byte(data: bytes, chunks: list[int]) -> None:
    items = _decode_all(data, chunks)
    assert all(isinstance(item, Frame | FrameError) for item in items)
    consumed = sum(item.skipped if isinstance(item, FrameError) else 5 + len(item.payload) + 2 for item in items)
    assert consumed == len(data)  # nothing vanishes unreported, nothing is counted twice
    for item in items:
        if isinstance(item, FrameError):
            assert item.problem and item.detail
        else:
            try:
                item.fields()
            except FrameError as err:
                assert err.problem.value == "payload"


payloads = st.binary(max_size=MAX_PAYLOAD) | st.dictionaries(st.text(max_size=8), json_values, max_size=4)


@SETTINGS
@given(frames=st.lists(st.tuples(st.integers(0, 255), payloads), min_size=1, max_size=5),
       garbage=st.lists(st.binary(max_size=40), min_size=6, max_size=6), chunks=st.lists(st.integers(1, 50)))
def test_frames_round_trip_and_the_decoder_resyncs_after_garbage(frames, garbage, chunks) -> None:
    encoded = []
    for frame_type, payload in frames:
        try:
            wire = encode_frame(frame_type, payload)
        except FrameError:  # a JSON object over the limit
            assume(False)
        if isinstance(payload, dict):
            assert Frame(frame_type, wire[5:-2]).fields() == payload
        encoded.append((frame_type, wire[5:-2], wire))
    # Garbage without a start byte between frames: every frame must still come out, in order.
    stream = b"".join(garbage[n].replace(bytes([STX]), b"") + wire for n, (_, _, wire) in enumerate(encoded))
    got = [item for item in _decode_all(stream, chunks) if isinstance(item, Frame)]
    assert [(f.type, f.payload) for f in got] == [(t, raw) for t, raw, _ in encoded]


def test_encode_refuses_a_payload_over_the_limit() -> None:
    with pytest.raises(FrameError):
        encode_frame(0x30, b"x" * (MAX_PAYLOAD + 1))


# ---- the config loader ------------------------------------------------------------------

toml_ish = st.lists(st.sampled_from(["[device]", "[broker]", "[sync]", "[[x]]", 'id = "t1"', "hall_id = 'h'",
                                     "window_id = \"w\"", "port = 70000", "port = 1883", "batch_size = 0",
                                     "kinds = ['sim', 'laser']", "x = [1, 'a']", "= 1", "a.b.c = 1", "\x00",
                                     'dir = "/tmp"', "reconnect_max_s = inf", "keepalive_s = nan", "é = 1",
                                     "[device", "port = 1e400"]), max_size=12).map("\n".join)


@SETTINGS
@given(text=toml_ish | st.text(max_size=200))
def test_load_config_raises_only_config_error_on_any_text(tmp_path_factory, text: str) -> None:
    path = Path(tmp_path_factory.mktemp("cfg")) / "agent.toml"
    path.write_text(text, "utf-8")
    for model in (AgentConfig, CollectorConfig):
        try:
            load_config(model, path)
        except ConfigError as err:
            assert str(path) in str(err)  # it names the file


@SETTINGS
@given(overrides=st.dictionaries(st.sampled_from(["device", "broker", "sync", "data", "timing", "frontend", "zz"]),
                                 json_values, max_size=5))
def test_load_config_raises_only_config_error_on_any_nested_dict(overrides: dict) -> None:
    try:
        load_config(AgentConfig, None, overrides)
    except ConfigError as err:
        assert "key" in str(err)


def test_load_config_on_bytes_that_are_not_utf8(tmp_path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"\xff\xfe[device]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(AgentConfig, path)


# ---- the receipt token ---------------------------------------------------------------

keys = st.binary(min_size=16, max_size=64)


@SETTINGS
@given(token=st.text(max_size=60) | st.from_regex(r"\A\d{1,12}\.[A-Za-z0-9_-]{22}\Z"),
       case=st.text(max_size=30), key=keys, now=st.floats(0, 2e12, allow_nan=False))
@example(token="9" * 12 + "." + "A" * 22, case="C1", key=b"k" * 32, now=0.0)
@example(token="٣" * 3 + "." + "A" * 22, case="C1", key=b"k" * 32, now=0.0)  # Unicode digits
def test_verify_raises_only_token_error(token: str, case: str, key: bytes, now: float) -> None:
    try:
        verify(token, case, key, now)
    except TokenError as err:
        assert err.problem and str(err)


@SETTINGS
@given(case=st.text(min_size=1, max_size=40), key=keys, expiry=st.integers(1, 10**12 - 1),
       before=st.integers(1, 10**6))
def test_a_token_round_trips_and_expires(case: str, key: bytes, expiry: int, before: int) -> None:
    token = make_token(key, case, expiry)
    assert verify(token, case, key, expiry - before) == expiry
    with pytest.raises(TokenError) as expired:
        verify(token, case, key, expiry)
    assert expired.value.problem.value == "expired"
    with pytest.raises(TokenError) as other:
        verify(token, case + "x", key, expiry - before)
    assert other.value.problem.value == "bad-signature"


def test_the_strategies_cover_aware_times() -> None:
    assert (datetime.now(UTC) + timedelta(0)).tzinfo is not None


moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30),
                       timezones=st.timezones() | st.sampled_from([UTC, timezone(timedelta(hours=8))]))


# A wall time repeated when summer time ended: fold=0 is the first pass (MDT, 07:00 UTC), fold=1 the
# second (MST, 08:00 UTC). Python compares such times by wall clock within one zone and calls them
# unequal to everything in another zone (PEP 495), so instants are taken as offsets from the epoch.
ambiguous_wall_time = datetime(1987, 10, 25, 1, 0, tzinfo=ZoneInfo("America/Boise"))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(moment: datetime) -> timedelta:
    return moment - EPOCH


@given(first=moments, second=moments)
@example(first=datetime(2000, 1, 1, tzinfo=UTC), second=ambiguous_wall_time)
@example(first=ambiguous_wall_time, second=ambiguous_wall_time.replace(fold=1))
@example(first=ambiguous_wall_time.replace(fold=1), second=ambiguous_wall_time)
def test_utc_text_is_the_same_instant_in_one_fixed_form_whose_text_order_is_time_order(first, second):
    """Stored times are compared as text (e.g. a default after a rating): the form must never vary."""
    for moment in (first, second):
        text = utc_text(moment)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", text), text
        assert instant(datetime.fromisoformat(text)) == instant(moment)
    assert (utc_text(first) < utc_text(second)) == (instant(first) < instant(second))


def test_utc_text_refuses_a_naive_time():
    with pytest.raises(ValueError, match="naive"):
        utc_text(datetime(2026, 1, 1))


@given(st.lists(st.text(max_size=20), max_size=8))
def test_the_stores_json_lists_parse_back_to_the_values(values):
    """The store's lookups pass id lists to json_each; a fast join must never change or break a value."""
    assert json.loads(json_list(values)) == values


@given(st.lists(st.text(string.ascii_letters + string.digits + "._:-", min_size=1, max_size=64), max_size=8))
def test_id_lists_are_joined_without_the_json_encoder(values):
    """The fast path is taken for ids: compact, and exactly the values between quotes."""
    assert json_list(values) == json.dumps(values, separators=(",", ":"))

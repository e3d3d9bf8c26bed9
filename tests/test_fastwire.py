"""The collector's fast rating decoder and ack encoder agree with the reference protocol (hcp.protocol)."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz.targets import fast_rating_messages, plain
from hcp.domain import Kind, Outcome
from hcp.exc import ProtocolError
from hcp.fastwire import WireRatingMessage, decode_rating_message, encode_ack
from hcp.protocol import AckMessage, AckResult, Rating, RatingMessage, decode, encode

RATING_ID = "0190f0a4-1111-7000-8000-000000000001"

# Values on both sides of every constraint, and the spellings where JSON libraries differ.
times = st.builds(
    lambda date, sep, clock, fraction, zone: f"{date}{sep}{clock}{fraction}{zone}",
    st.sampled_from(["2026-11-22", "2026-02-29", "2024-02-29", "2026-13-01", "20261122"]),
    st.sampled_from(["T", "t", " ", "_", ""]),
    st.sampled_from(["10:00:00", "23:59:59", "23:59:60", "24:00:00", "10:00", "1:00:00"]),
    st.sampled_from(["", "."]) | st.text("0123456789", min_size=1, max_size=10).map(lambda d: "." + d)
    | st.sampled_from([",5"]),
    st.sampled_from(["+08:00", "Z", "z", "-00:00", "+0800", "+08", "+23:59", "+24:00", "+08:60", "", "+08:00:30"]),
)
idents = (st.text(string.ascii_letters + string.digits + "._:-", min_size=1, max_size=65)
          | st.sampled_from(["", "a b", "C1\n", "案件1", "x" * 64, "x" * 65]))
rating_ids = st.sampled_from([RATING_ID, RATING_ID.upper(), "0" * 15, "0" * 16, "f" * 64, "f" * 65, RATING_ID + "\n",
                              "g" * 16, 5, None])
ints = st.sampled_from([0, 1, 2, 5, 6, -1, 2**63, 2**64, 10**30, 1.0, 3.5, True, "5", None])
floats = st.sampled_from([0, 0.0, -0.0, 1.5, -1.0, 1e308, 12.123456789, 10**30, "1", True, None])
texts = st.text(max_size=42) | st.sampled_from(["", "态度\"差\"", "a\\b", "\t", "\ud800", "x" * 40, "x" * 41])


@st.composite
def near_valid_ratings(draw: st.DrawFn) -> dict:
    rating = {"rating_id": RATING_ID, "seq": 1, "kind": "service", "case_ids": ["C1"], "score": 5,
              "rated_at": "2026-11-22T10:00:00.123456+08:00", "clock_synced": True}
    changes = draw(st.dictionaries(st.sampled_from(
        ["rating_id", "seq", "kind", "case_ids", "score", "rated_at", "clock_synced", "prompt_id", "hall_id",
         "window_id", "clerk_id", "item_code", "reasons", "boot_id", "uptime_s", "extra", "-seq", "-rated_at"]),
        st.just(None), max_size=4))
    for field in changes:
        if field.startswith("-"):
            rating.pop(field[1:], None)
        elif field == "rating_id":
            rating[field] = draw(rating_ids)
        elif field in ("seq", "score"):
            rating[field] = draw(ints)
        elif field == "kind":
            rating[field] = draw(st.sampled_from([*Kind, "Service", "", 1]))
        elif field == "case_ids":
            rating[field] = draw(st.lists(idents, max_size=3) | st.just(["C1"] * 51) | st.just("C1"))
        elif field == "rated_at":
            rating[field] = draw(times | st.sampled_from([0, None]))
        elif field == "clock_synced":
            rating[field] = draw(st.sampled_from([False, 1, 0, "true", None]))
        elif field in ("reasons",):
            rating[field] = draw(st.lists(texts, max_size=3) | st.just(["r"] * 21))
        elif field == "boot_id":
            rating[field] = draw(texts | st.just("b" * 65) | st.none())
        elif field == "uptime_s":
            rating[field] = draw(floats)
        elif field == "extra":
            rating[draw(st.sampled_from(["extra", "Score", ""]))] = 1
        else:
            rating[field] = draw(idents | st.none())
    return rating


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    message = {"v": draw(st.sampled_from([1, 1, 1, 2, 1.0, True, "1"])),
               "device_id": draw(st.sampled_from(["t1", "t1"]) | idents),
               "ratings": draw(st.lists(near_valid_ratings(), min_size=0, max_size=3))}
    text = json.dumps(message, ensure_ascii=draw(st.booleans()))
    # A key spelled twice: JSON allows it, and both libraries must keep the same one.
    if draw(st.booleans()) and message["ratings"]:
        text = text.replace('"score": ', '"score": 4, "score": ', 1)
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads())
@example(payload=b'{"v":1,"device_id":"t1","ratings":[{"rating_id":"' + RATING_ID.encode() + b'","seq":1,'
         b'"kind":"service","case_ids":["C1"],"score":5,"rated_at":"2026-11-22T10:00:00.1234567+08:00",'
         b'"clock_synced":true}]}')
@example(payload=b'{"v":1,"device_id":"t1","ratings":[{"rating_id":"' + RATING_ID.encode() + b'","seq":1,'
         b'"kind":"service","case_ids":["C1"],"score":5,"rated_at":"2026-11-22T10:00:00.\\u0031234567+08:00",'
         b'"clock_synced":true}]}')
def test_the_fast_decoder_gives_the_reference_values_or_its_error(payload: bytes) -> None:
    fast_rating_messages(payload)


@given(payload=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_the_fast_decoder_agrees_on_any_bytes(payload: bytes) -> None:
    fast_rating_messages(payload)


aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 30),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]))
ratings = st.builds(
    Rating, rating_id=st.uuids().map(str), seq=st.integers(1, 2**53), kind=st.sampled_from(list(Kind)),
    case_ids=st.lists(st.text(string.ascii_letters + string.digits + "._:-", min_size=1, max_size=64), max_size=3),
    score=st.integers(1, 5), rated_at=aware, clock_synced=st.booleans(),
    # Printable reasons, as terminals' reason lists hold: a control character is sent as a \\u escape,
    # which takes the reference path (still correct, only slower).
    reasons=st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40),
                     max_size=3),
    uptime_s=st.none() | st.floats(0, 1e9))


@given(batch=st.lists(ratings, min_size=1, max_size=5))
def test_what_a_terminal_sends_takes_the_fast_path(batch: list[Rating]) -> None:
    """The syncer's messages are what the collector decodes all day: they must not fall back."""
    payload = encode(RatingMessage(v=1, device_id="t1", ratings=batch))
    fast = decode_rating_message(payload)
    assert isinstance(fast, WireRatingMessage)
    assert plain(fast) == plain(decode(RatingMessage, payload))


def test_a_wrong_field_is_named_as_the_reference_names_it() -> None:
    bad = {"v": 1, "device_id": "t1", "ratings": [{"rating_id": RATING_ID, "seq": 1, "kind": "service",
                                                    "case_ids": ["C1"], "score": 6, "rated_at": "2026-11-22T10:00:00Z",
                                                    "clock_synced": True}]}
    with pytest.raises(ProtocolError) as raised:
        decode_rating_message(json.dumps(bad).encode())
    assert raised.value.field == "ratings[0].score"


def test_an_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        decode_rating_message(b" " * (256 * 1024 + 1))


# No answer holds a lone surrogate: the reference refuses one in a payload as invalid JSON.
unicode = st.text(st.characters(blacklist_categories=("Cs",)), max_size=42)


@given(answers=st.lists(st.tuples(unicode, st.sampled_from(list(Outcome)), unicode), max_size=5),
       error=st.none() | unicode)
def test_an_encoded_ack_decodes_as_the_reference_ack(answers, error) -> None:
    expected = AckMessage(v=1, results=[AckResult(rating_id=r, outcome=o, reason=s) for r, o, s in answers],
                          error=error)
    payload = encode_ack(answers, error)
    assert decode(AckMessage, payload) == expected
    assert json.loads(payload) == json.loads(encode(expected))

"""The frame codec: round trips, resynchronisation, errors as values, and the doc's examples."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcp.device.exc import FrameError, FrameProblem
from hcp.device.frames import MAX_PAYLOAD, Frame, FrameDecoder, FrameType, crc16, encode_frame

DOC = Path(__file__).resolve().parent.parent / "docs" / "serial-protocol.md"
KEY3 = encode_frame(FrameType.KEY, {"key": 3})


def problems(items: list[Frame | FrameError]) -> list[FrameProblem]:
    return [i.problem for i in items if isinstance(i, FrameError)]


def frames(items: list[Frame | FrameError]) -> list[Frame]:
    return [i for i in items if isinstance(i, Frame)]


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1


def test_round_trip_byte_by_byte() -> None:
    decoder = FrameDecoder()
    wire = encode_frame(FrameType.PROMPT, {"item_name": "不动产登记"}) + encode_frame(FrameType.HEARTBEAT)
    out = [item for byte in wire for item in decoder.feed(bytes([byte]))]
    assert [f.type for f in frames(out)] == [FrameType.PROMPT, FrameType.HEARTBEAT]
    assert frames(out)[0].fields() == {"item_name": "不动产登记"} and frames(out)[1].fields() == {}
    assert problems(out) == [] and decoder.pending == 0


def test_garbage_between_frames() -> None:
    out = FrameDecoder().feed(b"\xff\x00hello" + KEY3 + b"\x01\x03" + KEY3)
    assert problems(out) == [FrameProblem.GARBAGE, FrameProblem.GARBAGE]
    assert len(frames(out)) == 2


def test_bad_crc_skips_one_byte_and_finds_the_next_frame() -> None:
    bad = bytearray(KEY3)
    bad[-1] ^= 0xFF
    out = FrameDecoder().feed(bytes(bad) + KEY3)
    assert problems(out)[0] is FrameProblem.CRC and frames(out) == [Frame(FrameType.KEY, b'{"key":3}')]


def test_a_frame_inside_a_bad_frame_is_found() -> None:
    # A start byte whose length swallows a real frame: the CRC fails, the real frame survives.
    out = FrameDecoder().feed(b"\x02\x01\x10\x00\x05" + KEY3)
    assert FrameProblem.CRC in problems(out) and len(frames(out)) == 1


def test_truncated_frame_then_quiet_then_a_good_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(KEY3[:8]) == [] and decoder.pending == 8
    out = decoder.expire()
    assert problems(out)[0] is FrameProblem.TRUNCATED and decoder.pending == 0
    assert frames(decoder.feed(KEY3)) == [Frame(FrameType.KEY, b'{"key":3}')]


def test_truncated_frame_followed_at_once_by_a_good_one() -> None:
    decoder = FrameDecoder()
    out = decoder.feed(KEY3[:8] + KEY3)  # the truncated frame's length eats into the next
    out += decoder.expire() if not frames(out) else []
    assert len(frames(out)) == 1


def test_unknown_version_and_oversized_length_are_garbage() -> None:
    out = FrameDecoder().feed(b"\x02\x02\x10\x00\x00" + b"\x02\x01\x10\xff\xff" + KEY3)
    assert problems(out)[:1] == [FrameProblem.VERSION] and FrameProblem.LENGTH in problems(out)
    assert len(frames(out)) == 1


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"[1,2]", b"{", b"[" * 1000, b'"x"'])
def test_bad_payloads_raise_only_frame_errors(payload: bytes) -> None:
    with pytest.raises(FrameError) as caught:
        Frame(FrameType.KEY, payload).fields()
    assert caught.value.problem is FrameProblem.PAYLOAD


def test_too_long_to_send() -> None:
    with pytest.raises(FrameError, match="too-long"):
        encode_frame(FrameType.STATE, b"x" * (MAX_PAYLOAD + 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_bytes_never_raise(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        for item in decoder.feed(chunk):
            assert isinstance(item, Frame | FrameError)
            if isinstance(item, Frame):
                with contextlib.suppress(FrameError):  # bad payloads are fine; other exceptions are not
                    item.fields()
    while decoder.pending:
        decoder.expire()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=40), st.integers(0, 255))
def test_a_frame_survives_any_garbage_before_it(garbage: bytes, payload: bytes, frame_type: int) -> None:
    decoder = FrameDecoder()
    wire = encode_frame(frame_type, payload)
    out = decoder.feed(garbage + wire)
    while decoder.pending:  # the line goes quiet after the frame
        out += decoder.expire()
    assert Frame(frame_type, payload) in frames(out)


# ---- the documentation's examples ------------------------------------------------

def doc_examples() -> list[tuple[str, int, str, bytes]]:
    """(name, type, payload text, frame bytes) for each ```frame block under its ### NAME (0xNN) heading."""
    text = DOC.read_text("utf-8")
    pattern = re.compile(r"^### (\w+) \(0x([0-9A-F]{2})\)\n(.*?)```frame\n(.*?)```", re.S | re.M)
    examples = []
    for name, code, prose, hexes in pattern.findall(text):
        payload = re.search(r"^Payload: `(.*)`$", prose, re.M)
        examples.append((name, int(code, 16), payload.group(1) if payload else "", bytes.fromhex(hexes)))
    return examples


def test_the_doc_has_an_example_of_every_type() -> None:
    assert sorted(code for _, code, _, _ in doc_examples()) == sorted(FrameType)


@pytest.mark.parametrize("example", doc_examples(), ids=lambda e: e[0])
def test_doc_example_frames_parse(example: tuple[str, int, str, bytes]) -> None:
    name, code, payload, wire = example
    out = FrameDecoder().feed(wire)
    assert problems(out) == [] and len(out) == 1
    frame = frames(out)[0]
    assert FrameType[name] == code == frame.type
    assert frame.fields() == (json.loads(payload) if payload else {})


def test_doc_type_table_matches_the_code() -> None:
    rows = re.findall(r"^\| 0x([0-9A-F]{2}) \| ([A-Z_]+)\s*\|", DOC.read_text("utf-8"), re.M)
    assert {int(code, 16): name for code, name in rows} == {t.value: t.name for t in FrameType}

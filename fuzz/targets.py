"""The fuzz targets: one function per parser, shared by the atheris harnesses and the corpus replay test.

A target takes raw bytes and raises only if the parser broke its contract:
anything but the project's own parse error escaping, or a good input that
does not round-trip. Plain Python; atheris is needed only to search.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from enum import Enum

import msgspec

from hcp.device.exc import FrameError
from hcp.device.frames import Frame, FrameDecoder, encode_frame
from hcp.exc import ProtocolError
from hcp.fastwire import AnyRatingMessage, decode_rating_message
from hcp.protocol import (
    AckMessage,
    CasesAckMessage,
    CasesMessage,
    PromptMessage,
    RatingMessage,
    SettingsMessage,
    StatusMessage,
    decode,
    encode,
)

MODELS = (RatingMessage, AckMessage, PromptMessage, StatusMessage, SettingsMessage, CasesMessage,
          CasesAckMessage)


def frames(data: bytes) -> None:
    """Feed ``data`` to a FrameDecoder in chunks chosen by its first byte; check every byte is accounted for."""
    step = (data[0] % 17 + 1) if data else 1
    decoder = FrameDecoder()
    items = []
    for at in range(0, len(data), step):
        items += decoder.feed(data[at:at + step])
    while decoder.pending:
        items += decoder.expire()
    consumed = 0
    for item in items:
        if isinstance(item, FrameError):
            consumed += item.skipped
            continue
        assert isinstance(item, Frame), item
        consumed += 5 + len(item.payload) + 2
        assert encode_frame(item.type, item.payload) in data  # a frame decoded is a frame that was sent
        with contextlib.suppress(FrameError):  # a payload that is not a JSON object is reported, not raised
            item.fields()
    assert consumed == len(data), (consumed, len(data))


def payloads(data: bytes) -> None:
    """Decode ``data`` as every wire model; only ProtocolError may escape, and what decodes re-encodes."""
    for model in MODELS:
        try:
            message = decode(model, data)
        except ProtocolError as err:
            assert err.field and err.problem
            continue
        assert decode(model, encode(message)) == message
    fast_rating_messages(data)


def fast_rating_messages(data: bytes) -> None:
    """The collector's fast decoder agrees with the reference: the same values, or the same error."""
    try:
        reference: RatingMessage | ProtocolError = decode(RatingMessage, data)
    except ProtocolError as err:
        reference = err
    try:
        fast: AnyRatingMessage | ProtocolError = decode_rating_message(data)
    except ProtocolError as err:
        fast = err
    if isinstance(reference, ProtocolError):
        assert isinstance(fast, ProtocolError), f"fast decoder accepted what the reference refuses: {reference}"
        assert (fast.field, fast.problem) == (reference.field, reference.problem)
    else:
        assert not isinstance(fast, ProtocolError), f"fast path raised {fast}"
        assert plain(fast) == plain(reference)


def plain(message: AnyRatingMessage) -> dict:
    """A rating message as builtins, either decoding; times with their offsets, so +08:00 ≠ Z."""
    def value(item: object) -> object:
        if isinstance(item, datetime):
            return item, item.utcoffset()
        if isinstance(item, list):
            return [value(v) for v in item]
        if isinstance(item, Enum):
            return item.value
        return item
    as_dict = msgspec.structs.asdict if isinstance(message, msgspec.Struct) else dict
    ratings = [msgspec.structs.asdict(r) if isinstance(r, msgspec.Struct) else dict(r) for r in message.ratings]
    top = {k: value(v) for k, v in as_dict(message).items() if k != "ratings"}
    return {**top, "ratings": [{k: value(v) for k, v in r.items()} for r in ratings]}


TARGETS = {"frames": frames, "payloads": payloads}

"""The fuzz targets: one function per parser, shared by the atheris harnesses and the corpus replay test.

A target takes raw bytes and raises only if the parser broke its contract:
anything but the project's own parse error escaping, or a good input that
does not round-trip. Plain Python; atheris is needed only to search.
"""

from __future__ import annotations

import contextlib

from hcp.device.exc import FrameError
from hcp.device.frames import Frame, FrameDecoder, encode_frame
from hcp.exc import ProtocolError
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


TARGETS = {"frames": frames, "payloads": payloads}

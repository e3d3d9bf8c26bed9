"""The collector's fast path for its one hot message: rating messages in, acks out.

``hcp.protocol`` (pydantic) is the reference: it defines the wire format,
and its errors name the field at fault. Draining a backlog decodes hundreds
of thousands of ratings, so the collector first tries msgspec on the same
schema, which is several times faster, and falls back to the reference for
anything the fast decoder does not accept: the reference then either accepts
the message too or raises the error a terminal is told. What the fast path
accepts, the reference accepts with equal values (property-tested in
``tests/test_fastwire.py``); where the two libraries read a value differently,
the fast path declines:

* times with more than six fractional digits (pydantic truncates the seventh,
  msgspec rounds), and
* any ``\\u`` escape, which may spell such a time or a lone surrogate.

Acks are encoded with msgspec too, from plain ``(rating_id, outcome, reason)``
tuples, and decode as :class:`hcp.protocol.AckMessage`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from hcp.domain import Kind
from hcp.protocol import (
    EARLIEST,
    IDENT_CHARS,
    LATEST,
    MAX_PAYLOAD_BYTES,
    MAX_RATINGS_PER_MESSAGE,
    MAX_SEQ,
    MAX_UPTIME_S,
    RATING_ID_CHARS,
    Rating,
    RatingMessage,
    decode,
)

# The same constraints as hcp.protocol, but for the character sets of ids:
# msgspec checks a pattern with a Python re call per string, which costs more
# than all the rest of decoding, so _ids_ok checks every id of a message at
# once instead (one regex over all of them joined).
_Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_RatingId = Annotated[str, msgspec.Meta(min_length=16, max_length=64)]
_Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
_IDENT_CHARS = re.compile(f"[{IDENT_CHARS}]*")
_RATING_ID_CHARS = re.compile(f"[{RATING_ID_CHARS}]*")

#: A seconds field with seven or more fractional digits ("…:00.1234567").
_LONG_FRACTION = re.compile(rb":\d\d\.\d{7}")


class WireRating(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """hcp.protocol.Rating, as msgspec decodes it: the same fields, names and constraints."""

    rating_id: _RatingId
    seq: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQ)]
    kind: Kind
    case_ids: Annotated[list[_Ident], msgspec.Meta(max_length=50)]
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    rated_at: Annotated[datetime, msgspec.Meta(tz=True)]
    clock_synced: bool
    prompt_id: _Ident | None = None
    hall_id: _Ident | None = None
    window_id: _Ident | None = None
    clerk_id: _Ident | None = None
    item_code: _Ident | None = None
    reasons: Annotated[list[_Reason], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    boot_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    uptime_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_UPTIME_S)] | None = None


class WireRatingMessage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """hcp.protocol.RatingMessage, as msgspec decodes it."""

    v: Literal[1]
    device_id: _Ident
    ratings: Annotated[list[WireRating], msgspec.Meta(min_length=1, max_length=MAX_RATINGS_PER_MESSAGE)]


class _AckResult(msgspec.Struct, frozen=True, array_like=False):
    rating_id: str
    outcome: str
    reason: str


class _AckMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    v: int
    results: list[_AckResult]
    error: str | None = None
    first_rating_id: str | None = None


_decoder = msgspec.json.Decoder(WireRatingMessage)
_encoder = msgspec.json.Encoder()

#: Either decoding of a rating message, and of a rating; the collector reads both by attribute.
AnyRatingMessage = RatingMessage | WireRatingMessage
AnyRating = Rating | WireRating


def decode_rating_message(payload: bytes) -> AnyRatingMessage:
    """The rating message in ``payload``; raises ProtocolError (from the reference) naming the field."""
    if len(payload) <= MAX_PAYLOAD_BYTES and b"\\u" not in payload and not _LONG_FRACTION.search(payload):
        try:
            message = _decoder.decode(payload)
        except (msgspec.MsgspecError, UnicodeDecodeError):
            pass  # the reference decides, and names the field
        else:
            if _ids_ok(message) and _times_ok(message):
                return message
    return decode(RatingMessage, payload)


def _ids_ok(message: WireRatingMessage) -> bool:
    """Every id of ``message`` is of the characters hcp.protocol allows (their lengths msgspec checked)."""
    ratings = message.ratings
    return (_RATING_ID_CHARS.fullmatch("".join([r.rating_id for r in ratings])) is not None
            and _IDENT_CHARS.fullmatch("".join([message.device_id, *[c for r in ratings for c in r.case_ids],
                                                *[i for r in ratings for i in (r.prompt_id, r.hall_id, r.window_id,
                                                                               r.clerk_id, r.item_code) if i]]))
            is not None)


def _times_ok(message: WireRatingMessage) -> bool:
    """Every rated_at of ``message`` lies within the protocol's bounds (msgspec cannot bound a datetime)."""
    return all(EARLIEST <= r.rated_at < LATEST for r in message.ratings)


def encode_ack(results: Iterable[tuple[str, str, str]], error: str | None = None,
               first_rating_id: str | None = None) -> bytes:
    """An AckMessage (``{"v":1,"results":[…]}``) for ``(rating_id, outcome, reason)`` answers."""
    return _encoder.encode(_AckMessage(v=1, results=[_AckResult(*answer) for answer in results], error=error,
                                       first_rating_id=first_rating_id))

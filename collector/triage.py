"""Reading what can be read from a rating message that failed validation.

One bad rating (a score of 6 from a buggy terminal) must not cost the 499
good ones travelling with it: the terminal forgets every rating it gets an
answer for. So the good ratings are taken on, each bad one is answered
``rejected`` with the field at fault (it can never count), and only a
message whose ratings cannot be told apart is answered with a message-level
``error``.

A wrong *envelope* (a newer protocol version, too many ratings, a payload
over the size limit, a bad ``device_id``) says nothing against the ratings
inside: they could count once sent right. Such a message gets an ``error``
and no results at all, so the terminal keeps every rating of it (and splits
an oversized batch); ``first_rating_id`` tells it which message it was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from hcp.domain import Outcome
from hcp.exc import ProtocolError
from hcp.protocol import RATING_ID_CHARS, AckResult, Rating, RatingMessage, decode

_RATING_ID = re.compile(f"[{RATING_ID_CHARS}]{{16,64}}")
#: An unparsed payload (over the size limit, say) is searched this far for the first rating id.
_HEAD_BYTES = 4096
_FIRST_ID = re.compile(rb'"rating_id"\s*:\s*"([' + RATING_ID_CHARS.encode() + rb']{16,64})"')


@dataclass
class Triage:
    """The good part of a message, answers for the bad part, and an error for the unanswerable."""

    message: RatingMessage | None = None
    rejected: list[AckResult] = field(default_factory=list)
    error: str | None = None
    #: With an envelope error: the first rating id that could be read, naming the message to its sender.
    first_rating_id: str | None = None


def triage(payload: bytes, err: ProtocolError) -> Triage:
    """Split ``payload``, which ``decode`` refused with ``err``, into what can be answered."""
    if err.field == "payload":  # too large, not JSON, not an object: nothing can be read
        found = _FIRST_ID.search(payload[:_HEAD_BYTES])
        return Triage(error=str(err), first_rating_id=found.group(1).decode() if found else None)
    data = json.loads(payload)
    entries = data.get("ratings")
    if not isinstance(entries, list) or not err.field.startswith("ratings["):
        return _envelope(entries, str(err))
    good, result = [], Triage()
    for index, entry in enumerate(entries):
        try:
            decode(Rating, json.dumps(entry))
            good.append(entry)
        except ProtocolError as bad:
            _answer_bad(result, index, entry, bad)
    if good:
        try:
            result.message = decode(RatingMessage, json.dumps({**data, "ratings": good}))
        except ProtocolError as envelope:
            return _envelope(entries, str(envelope))
    return result


def _answer_bad(result: Triage, index: int, entry: object, bad: ProtocolError) -> None:
    reason = f"ratings[{index}].{bad}"
    rating_id = _readable_id(entry)
    if rating_id:
        result.rejected.append(AckResult(rating_id=rating_id, outcome=Outcome.REJECTED, reason=reason))
    elif result.error is None:  # an unreadable id can only be reported for the message
        result.error = reason


def _envelope(entries: object, reason: str) -> Triage:
    """The envelope is wrong: nothing is taken or answered, and the error names the message by its first id."""
    ids = (i for i in map(_readable_id, entries if isinstance(entries, list) else []) if i)
    return Triage(error=reason, first_rating_id=next(ids, None))


def _readable_id(entry: object) -> str | None:
    rating_id = entry.get("rating_id") if isinstance(entry, dict) else None
    return rating_id if isinstance(rating_id, str) and _RATING_ID.fullmatch(rating_id) else None

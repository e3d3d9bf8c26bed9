"""Wire protocol v1: decoding, errors naming the field, and the examples in docs/protocol.md."""

import json
import re
from pathlib import Path

import pytest

from hcp import protocol
from hcp.exc import ProtocolError

DOC = Path(__file__).parent.parent / "docs" / "protocol.md"

GOOD_RATING = {
    "rating_id": "019ab3c2-7d10-7a4e-9f3e-2b6c1d0e9a11", "seq": 1, "kind": "service",
    "case_ids": ["C1"], "score": 5, "rated_at": "2026-11-22T10:00:00+08:00", "clock_synced": True,
}


def message(**rating_changes):
    rating = {**GOOD_RATING, **rating_changes}
    return json.dumps({"v": 1, "device_id": "t1", "ratings": [rating]})


def doc_examples():
    """(topic, json) for every ```json block in the protocol doc, keyed by the heading above it."""
    found = []
    for section in DOC.read_text("utf-8").split("\n## ")[1:]:
        heading = section.splitlines()[0]
        found += [(heading, body) for body in re.findall(r"```json\n(.*?)```", section, re.S)]
    return found


MODELS = {
    "Rating batch": protocol.RatingMessage, "Ack": protocol.AckMessage, "Prompt": protocol.PromptMessage,
    "Status": protocol.StatusMessage, "Case records": protocol.CasesMessage,
    "Cases ack": protocol.CasesAckMessage, "Remote settings": protocol.SettingsMessage,
}


@pytest.mark.parametrize(("heading", "body"), doc_examples())
def test_every_doc_example_decodes(heading, body):
    model = next(m for name, m in MODELS.items() if heading.startswith(name))
    assert protocol.decode(model, body.encode())


def test_doc_has_an_example_per_message():
    headings = [h for h, _ in doc_examples()]
    for name in MODELS:
        assert any(h.startswith(name) for h in headings), name


def test_good_message_round_trips():
    decoded = protocol.decode(protocol.RatingMessage, message())
    assert protocol.decode(protocol.RatingMessage, protocol.encode(decoded)) == decoded


@pytest.mark.parametrize(("change", "field"), [
    ({"score": 0}, "ratings[0].score"),
    ({"score": 6}, "ratings[0].score"),
    ({"score": "5"}, "ratings[0].score"),
    ({"kind": "window"}, "ratings[0].kind"),
    ({"rated_at": "2026-11-22T10:00:00"}, "ratings[0].rated_at"),
    ({"case_ids": ["a b"]}, "ratings[0].case_ids[0]"),
    ({"seq": 0}, "ratings[0].seq"),
    ({"extra": 1}, "ratings[0].extra"),
    ({"rating_id": "../../etc"}, "ratings[0].rating_id"),
])
def test_bad_fields_are_named(change, field):
    with pytest.raises(ProtocolError) as err:
        protocol.decode(protocol.RatingMessage, message(**change))
    assert err.value.field == field
    assert str(err.value).startswith(field + ":")


@pytest.mark.parametrize(("payload", "problem"), [
    (b"{", "not valid JSON"),
    (b"[1,2]", "must be a JSON object"),
    (b'{"v": 2, "device_id": "t1", "ratings": []}', "protocol version must be the integer 1"),
    (b"\xff\xfe", "not valid JSON"),
    (b"x" * (protocol.MAX_PAYLOAD_BYTES + 1), "over the limit"),
])
def test_unreadable_payloads_say_why(payload, problem):
    with pytest.raises(ProtocolError, match=problem):
        protocol.decode(protocol.RatingMessage, payload)


def test_topics():
    topics = protocol.Topics("x/v1")
    assert topics.rating("t1") == "x/v1/dev/t1/rating"
    assert topics.device_of("x/v1/dev/t1/rating") == "t1"
    assert topics.device_of("x/v1/cases") is None
    assert topics.device_of("other/dev/t1/rating") is None

"""The collector store against real SQLite: the one-rating rules, idempotency, privacy."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import datetime, timedelta

import pytest

from hcp.collector.exc import MessageRefused, SecretKeyError, UnknownDevice
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import CST, Outcome
from hcp.protocol import CaseRecord, RatingMessage, StatusMessage

KEY = bytes(range(32))
NOON = datetime(2024, 5, 6, 12, 0, tzinfo=CST)
APPLICANT = "110101199003071234"


@pytest.fixture
def store(database, tmp_path):
    profile = load_profile("ulanqab")  # hall ratings on, batches rated once, failed intake not ratable
    with Store.open(database, profile, KEY) as opened:
        opened.register_device("h1-w1", "h1", "w1")
        opened.register_device("h1-w2", "h1", "w2")
        opened.register_device("h2-w1", "h2", "w1")
        yield opened


def rid() -> str:
    return str(uuid.uuid4())


def rating(case_ids=("c1",), *, rating_id=None, kind="service", score=5, rated_at=NOON, synced=True, **extra):
    return {"rating_id": rating_id or rid(), "seq": 1, "kind": kind, "case_ids": list(case_ids), "score": score,
            "rated_at": rated_at.isoformat(), "clock_synced": synced, **extra}


def message(*ratings, device_id="h1-w1") -> RatingMessage:
    return RatingMessage.model_validate_json(json.dumps({"v": 1, "device_id": device_id, "ratings": list(ratings)}))


def case(case_id="c1", *, hall_id="h1", intake="ok", batch_id=None, applicant_id=APPLICANT, **extra) -> CaseRecord:
    fields = {"case_id": case_id, "hall_id": hall_id, "window_id": "w1", "item_code": "i1", "item_name": "营业执照",
              "clerk_id": "k1", "intake": intake, "batch_id": batch_id, "applicant_id": applicant_id,
              "completed_at": NOON.isoformat(), **extra}
    return CaseRecord.model_validate_json(json.dumps(fields))


def outcomes(results):
    return [(r.outcome.value, r.reason) for r in results]


def ingest(store, *ratings, device_id="h1-w1", topic=None, at=NOON):
    return store.ingest(topic or device_id, message(*ratings, device_id=device_id), at)


def test_accepted_and_the_same_rating_twice_is_stored_once_with_the_same_answer(store):
    store.add_cases([case()], NOON)
    first = rating()
    answer = ingest(store, first)
    assert outcomes(answer) == [("accepted", "")]
    assert ingest(store, first) == answer
    assert ingest(store, first, first) == answer * 2
    assert store.totals()["ratings"] == 1


def test_two_ratings_for_one_case_from_two_terminals(store):
    store.add_cases([case()], NOON)
    first, second = rating(), rating()
    assert outcomes(ingest(store, first)) == [("accepted", "")]
    [dup] = ingest(store, second, device_id="h1-w2")
    assert dup.outcome is Outcome.DUPLICATE
    assert first["rating_id"] in dup.reason and "case c1" in dup.reason
    # The duplicate claimed nothing and is answered the same when resent.
    assert ingest(store, second, device_id="h1-w2") == [dup]


def test_duplicate_within_one_message_and_a_duplicate_claims_nothing(store):
    store.add_cases([case("c1"), case("c2")], NOON)
    a, b, c = rating(["c1"]), rating(["c1", "c2"]), rating(["c2"])
    assert [r.outcome for r in ingest(store, a, b, c)] == [Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.ACCEPTED]


def test_rating_before_its_case_is_pending_then_decided_in_order(store):
    first, second = rating(["late"]), rating(["late"])
    [pending] = ingest(store, first)
    assert pending.outcome is Outcome.PENDING and "late" in pending.reason
    assert ingest(store, second, device_id="h1-w2")[0].outcome is Outcome.PENDING
    [stored] = store.add_cases([case("late")], NOON + timedelta(minutes=5))
    assert stored.outcome == "stored"
    assert store.outcome(first["rating_id"]) == (Outcome.ACCEPTED, "")
    outcome, reason = store.outcome(second["rating_id"])
    assert outcome is Outcome.DUPLICATE and first["rating_id"] in reason
    # The first answer is what a resend gets; the export shows both.
    assert ingest(store, first) == [pending]
    exported = {r["rating_id"]: r for r in store.export()}
    assert exported[first["rating_id"]]["outcome"] == "accepted"
    assert exported[first["rating_id"]]["ack_outcome"] == "pending"


def test_pending_on_two_cases_waits_for_both(store):
    waiting = rating(["a", "b"])
    assert ingest(store, waiting)[0].outcome is Outcome.PENDING
    store.add_cases([case("a")], NOON)
    assert store.outcome(waiting["rating_id"])[0] is Outcome.PENDING
    store.add_cases([case("b")], NOON)
    assert store.outcome(waiting["rating_id"])[0] is Outcome.ACCEPTED


def test_pending_rating_for_a_failed_intake_is_rejected_on_arrival(store):
    waiting = rating(["f"])
    ingest(store, waiting)
    store.add_cases([case("f", intake="failed")], NOON)
    outcome, reason = store.outcome(waiting["rating_id"])
    assert outcome is Outcome.REJECTED and "intake failed" in reason


def test_a_batch_is_rated_once(store):
    store.add_cases([case("b1", batch_id="B"), case("b2", batch_id="B")], NOON)
    assert ingest(store, rating(["b1"]))[0].outcome is Outcome.ACCEPTED
    [dup] = ingest(store, rating(["b2"]))
    assert dup.outcome is Outcome.DUPLICATE and "batch B" in dup.reason


def test_batches_are_separate_cases_when_the_profile_says_so(database, tmp_path):
    profile = load_profile("henan", overrides={"batch_rated_once": False})
    with Store.open(database, profile, KEY) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.add_cases([case("b1", batch_id="B"), case("b2", batch_id="B")], NOON)
        assert [r.outcome for r in ingest(store, rating(["b1"]), rating(["b2"]))] == [Outcome.ACCEPTED] * 2


def test_failed_intake_is_not_ratable(store):
    store.add_cases([case(intake="failed")], NOON)
    [answer] = ingest(store, rating())
    assert answer.outcome is Outcome.REJECTED and "case c1: intake failed" in answer.reason


def test_case_in_another_hall_is_rejected(store):
    store.add_cases([case(hall_id="h2")], NOON)
    [answer] = ingest(store, rating())
    assert answer.outcome is Outcome.REJECTED and "hall h2" in answer.reason


def test_hall_rating_without_cases_is_rejected(store):
    # A service rating without cases is a clerk-button prompt (tests/test_button_linking.py);
    # a hall rating must name the case whose prompt offered it.
    [answer] = ingest(store, rating([], kind="hall"))
    assert answer.outcome is Outcome.REJECTED and answer.reason.startswith("case_ids: empty")


def test_hall_rating_once_a_day_by_the_rater_day_or_receipt_day(store):
    store.add_cases([case("c1"), case("c2"), case("c3")], NOON)  # one applicant, three cases
    assert ingest(store, rating(["c1"], kind="hall"))[0].outcome is Outcome.ACCEPTED
    [dup] = ingest(store, rating(["c2"], kind="hall", rated_at=NOON + timedelta(hours=3)))
    assert dup.outcome is Outcome.DUPLICATE and "hall h1 on 2024-05-06" in dup.reason
    assert store._pseudonym(APPLICANT) not in dup.reason
    # An unsynced clock claims the next day, but the collector received it today: duplicate.
    unsynced = rating(["c3"], kind="hall", rated_at=NOON + timedelta(days=1), synced=False)
    assert ingest(store, unsynced)[0].outcome is Outcome.DUPLICATE
    # Received the next day: accepted.
    later = rating(["c3"], kind="hall", rated_at=NOON, synced=False)
    assert ingest(store, later, at=NOON + timedelta(days=1))[0].outcome is Outcome.ACCEPTED


def test_hall_day_is_the_china_day(store):
    store.add_cases([case("c1"), case("c2"), case("c3")], NOON)
    evening = datetime(2024, 5, 6, 23, 30, tzinfo=CST)
    assert ingest(store, rating(["c1"], kind="hall", rated_at=evening))[0].outcome is Outcome.ACCEPTED
    same_day_in_utc = datetime.fromisoformat("2024-05-06T15:45:00+00:00")  # 23:45 in China
    assert ingest(store, rating(["c2"], kind="hall", rated_at=same_day_in_utc))[0].outcome is Outcome.DUPLICATE
    next_day_in_utc = datetime.fromisoformat("2024-05-06T16:30:00+00:00")  # 00:30 on the 7th in China
    assert ingest(store, rating(["c3"], kind="hall", rated_at=next_day_in_utc))[0].outcome is Outcome.ACCEPTED


def test_hall_rating_without_applicant_is_rated_once_per_case(store):
    store.add_cases([case("anon", applicant_id=None)], NOON)
    assert ingest(store, rating(["anon"], kind="hall"))[0].outcome is Outcome.ACCEPTED
    assert ingest(store, rating(["anon"], kind="hall"))[0].outcome is Outcome.DUPLICATE


def test_hall_rating_off_in_profile(database, tmp_path):
    with Store.open(database, load_profile("henan"), KEY) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.add_cases([case()], NOON)
        [answer] = ingest(store, rating(kind="hall"))
        assert answer.outcome is Outcome.REJECTED and "hall ratings are off" in answer.reason


def test_unregistered_device_and_mismatched_ids_are_refused_whole_and_not_stored(store):
    # Not "rejected": the terminal would delete ratings that count once the device is registered.
    store.add_cases([case()], NOON)
    with pytest.raises(MessageRefused, match="ghost is not registered"):
        ingest(store, rating(), device_id="ghost")
    with pytest.raises(MessageRefused, match=r"^device_id h1-w2 does not match the topic's h1-w1$"):
        ingest(store, rating(), device_id="h1-w2", topic="h1-w1")
    assert store.totals()["ratings"] == 0
    store.register_device("ghost", "h1", "w3")
    assert outcomes(ingest(store, rating(), device_id="ghost")) == [("accepted", "")]
    [hall] = ingest(store, rating(hall_id="h2"))
    assert hall.outcome is Outcome.REJECTED and "hall_id h2" in hall.reason
    [window] = ingest(store, rating(window_id="w9"))
    assert window.outcome is Outcome.REJECTED and "window_id w9" in window.reason


def test_a_rating_id_from_another_device_gets_no_answer_of_the_first(store):
    store.add_cases([case()], NOON)
    first = rating()
    ingest(store, first)
    [other] = ingest(store, first, device_id="h1-w2")
    assert other.outcome is Outcome.REJECTED and "another device" in other.reason


def test_cases_stored_unchanged_or_rejected_when_edited(store):
    assert [r.outcome for r in store.add_cases([case("x")], NOON)] == ["stored"]
    assert [r.outcome for r in store.add_cases([case("x")], NOON)] == ["unchanged"]
    [edited] = store.add_cases([case("x", clerk_id="k2")], NOON)
    assert edited.outcome == "rejected" and edited.reason.startswith("clerk_id:")
    [person] = store.add_cases([case("x", applicant_id="someone else")], NOON)
    assert person.outcome == "rejected" and person.reason.startswith("applicant_id:")
    assert "someone else" not in person.reason
    # Same instant in another offset is the same record.
    same = case("x", completed_at=NOON.astimezone(tz=None).isoformat())
    assert store.add_cases([same], NOON)[0].outcome == "unchanged"
    # Within one message the second record meets the first.
    results = store.add_cases([case("y"), case("y", item_code="i2")], NOON)
    assert [r.outcome for r in results] == ["stored", "rejected"]


def test_applicant_id_never_reaches_the_database_file(store, tmp_path):
    store.add_cases([case("p1"), case("p2", batch_id="B")], NOON)
    ingest(store, rating(["p1"]), rating(["p1"], kind="hall"))
    exported = list(store.export())
    assert APPLICANT not in repr(exported) and store._pseudonym(APPLICANT) not in repr(exported)
    store.close()
    for path in tmp_path.glob("c.sqlite*"):
        assert APPLICANT.encode() not in path.read_bytes()


def test_export_links_cases_and_counts_by_grade(store):
    store.add_cases([case("c1"), case("c2"), case("c3")], NOON)
    ingest(store, rating(["c1"], score=5), rating(["c2"], score=1), rating(["c3"], score=3),
           rating(["c3"], score=5))
    record = next(store.export())
    assert record["cases"][0]["item_name"] == "营业执照" and "applicant_key" not in record["cases"][0]
    assert record["clock_synced"] is True and record["case_ids"] == ["c1"]
    [window] = store.window_counts()
    assert (window.hall_id, window.window_id, window.good, window.neutral, window.bad) == ("h1", "w1", 1, 1, 1)
    totals = store.totals()
    assert totals["accepted"] == 3 and totals["duplicate"] == 1 and totals["ratings"] == 4


def test_devices_and_status(store):
    assert [d.device_id for d in store.devices()] == ["h1-w1", "h1-w2", "h2-w1"]
    status = StatusMessage(v=1, device_id="h1-w1", state="online", version="1.0", outbox_depth=3)
    assert store.record_status("h1-w1", status, NOON)
    assert not store.record_status("ghost", status, NOON)
    assert store.device("h1-w1").outbox_depth == 3 and store.device("h1-w1").state == "online"
    store.register_device("h1-w1", "h1", "w5")
    assert store.device("h1-w1").window_id == "w5"
    store.remove_device("h1-w1")
    assert store.device("h1-w1") is None
    with pytest.raises(UnknownDevice):
        store.remove_device("h1-w1")
    with pytest.raises(ValueError):
        store.register_device("bad id", "h1", "w1")


def test_a_failed_message_rolls_back_alone_inside_a_batch(store):
    store.add_cases([case()], NOON)
    good = rating()
    with store.batch():
        with pytest.raises(RuntimeError), store.savepoint():
            ingest(store, rating())
            raise RuntimeError("injected")
        assert ingest(store, good)[0].outcome is Outcome.ACCEPTED
    assert store.totals()["ratings"] == 1


def test_key_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "keys" / "collector.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_or_create_key(path) == key
    os.chmod(path, 0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        load_or_create_key(path)


def test_reasons_with_quotes_and_backslashes_are_stored_as_valid_json_and_exported(store):
    """A reason is free text: a quote or a backslash in it must neither corrupt the row nor break the export."""
    store.add_cases([case()], NOON)
    reasons = ['态度"差"', "a\\b", "等了\t很久"]
    assert outcomes(ingest(store, rating(score=1, reasons=reasons))) == [("accepted", "")]
    assert json.loads(store._conn.execute("SELECT reasons FROM ratings").fetchone()[0]) == reasons
    assert [record["reasons"] for record in store.export()] == [reasons]

"""Hostile rating messages, as an attacker speaking the wire protocol would send them.

Each test here failed on the code before it: one rating id twice in a message
with different content, values that overflow when handled, absurd dates that
dodge once-a-day, and envelope errors that made a terminal delete ratings that
were never stored.
"""

from __future__ import annotations

import json
import queue
import time
from datetime import date, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stack import read_rows

from hcp.collector.exc import MessageRefused
from hcp.collector.service import Collector
from hcp.collector.store import Store
from hcp.collector.store import core as store_module
from hcp.collector.triage import triage
from hcp.config.policy import load_profile
from hcp.config.schema import CollectorConfig
from hcp.domain import CST, Kind, Outcome
from hcp.exc import ProtocolError
from hcp.fastwire import decode_rating_message
from hcp.pki import Pki, PkiError
from hcp.protocol import AckMessage, CaseRecord, CasesMessage, RatingMessage, StatusMessage, Topics, decode
from hcp.sync.mqtt import LinkSettings, MqttLink
from hcp.sync.outbox import Draft, Outbox
from hcp.sync.syncer import Syncer
from hcp.ui.exc import TokenError
from hcp.ui.receipt import make_token, verify

KEY = bytes(range(32))
WAIT_S = 10
NOON = datetime(2024, 5, 6, 12, 0, tzinfo=CST)
PROFILE = load_profile("ulanqab")  # hall ratings once a day, batches rated once, failed intake not ratable
#: c3 and c4 are one batch; c5's intake failed; c6 arrives only after the first message.
CASES = {"c1": ("A", None, "ok"), "c2": ("A", None, "ok"), "c3": ("B", "b1", "ok"), "c4": ("B", "b1", "ok"),
         "c5": ("B", None, "failed"), "c6": ("A", None, "ok")}
IDS = [f"0190f0a4-1111-7000-8000-00000000000{n}" for n in range(6)]


def case_record(case_id: str, *, completed: datetime = NOON) -> CaseRecord:
    applicant, batch, intake = CASES.get(case_id, ("A", None, "ok"))
    return CaseRecord.model_validate({
        "case_id": case_id, "hall_id": "h1", "window_id": "w1", "item_code": "i1", "item_name": "营业执照",
        "clerk_id": "k1", "intake": intake, "batch_id": batch, "applicant_id": f"11010119900307{applicant}",
        "completed_at": completed.isoformat()})


def rating(rating_id: str, case_ids: list[str], *, kind: str = "service", score: int = 5,
           rated_at: str = NOON.isoformat(), synced: bool = True, **extra: object) -> dict:
    return {"rating_id": rating_id, "seq": 1, "kind": kind, "case_ids": case_ids, "score": score,
            "rated_at": rated_at, "clock_synced": synced, **extra}


def payload(*ratings: dict, device_id: str = "h1-w1", v: object = 1) -> bytes:
    return json.dumps({"v": v, "device_id": device_id, "ratings": list(ratings)}).encode()


def open_store(path) -> Store:
    store = Store.open(path, PROFILE, KEY)
    store.register_device("h1-w1", "h1", "w1")
    store.register_device("h1-w2", "h1", "w2")
    return store


@pytest.fixture
def store(database):
    with open_store(database) as opened:
        opened.add_cases([case_record(c) for c in CASES if c != "c6"], NOON)
        yield opened


def send(store: Store, data: bytes, *, device_id: str = "h1-w1", at: datetime = NOON) -> list[tuple[str, str, str]]:
    return store.ingest_answers(device_id, decode_rating_message(data), at)


def stored(store: Store, rating_id: str) -> dict | None:
    return next((r for r in store.export() if r["rating_id"] == rating_id), None)


# -- one rating id twice in one message ------------------------------------------------------------------


def test_one_id_twice_with_different_content_counts_neither_copy(store):
    # The attack: copy 1 names the failed intake, copy 2 a good case; before, copy 2 was judged and copy 1
    # stored, so the failed intake counted; and a third rating of c1 was refused as a duplicate.
    twin = IDS[0]
    answers = send(store, payload(rating(twin, ["c5"]), rating(twin, ["c1"]), rating(IDS[1], ["c1"])))
    assert [a[1] for a in answers] == ["rejected", "rejected", "accepted"]
    assert answers[0] == answers[1] and "more than once in one message with different content" in answers[0][2]
    kept = stored(store, twin)
    assert kept["case_ids"] == ["c5"] and kept["outcome"] == "rejected" and kept["ack_outcome"] == "rejected"
    assert store.outcome(IDS[1]) == (Outcome.ACCEPTED, "")
    # The resend of either copy alone gets the stored answer, never a new judgement.
    assert send(store, payload(rating(twin, ["c1"]))) == [answers[0]]


def test_identical_copies_are_one_rating_answered_for_each_copy(store):
    answers = send(store, payload(rating(IDS[0], ["c1"]), rating(IDS[0], ["c1"])))
    assert answers == [(IDS[0], "accepted", "")] * 2
    assert store.totals()["ratings"] == 1


def _units(store: Store) -> list[tuple[str, str, str, str, list[str], str]]:
    """(rating_id, kind, outcome, day, case ids, applicant key of the first case) of every stored rating."""
    conn = store._conn
    rows = conn.execute("SELECT r.rating_id, r.kind, o.outcome, r.day, r.case_ids FROM ratings r "
                        "JOIN rating_outcomes o USING (rating_id)").fetchall()
    applicants = dict(conn.execute("SELECT case_id, applicant_key FROM cases"))
    return [(rid, kind, outcome, day, json.loads(ids), applicants.get(json.loads(ids)[0], "") if json.loads(ids)
             else "") for rid, kind, outcome, day, ids in rows]


def check_rules(store: Store) -> None:
    """At most one accepted rating per case, batch and person-day; no accepted rating of a failed intake."""
    service_units: dict[str, str] = {}
    hall_units: dict[tuple[str, str], str] = {}
    for rating_id, kind, outcome, day, case_ids, applicant in _units(store):
        if outcome != "accepted":
            continue
        if kind == "service":
            for case_id in case_ids:
                assert CASES[case_id][2] != "failed", f"{rating_id} counts failed intake {case_id}"
                unit = f"batch:{CASES[case_id][1]}" if CASES[case_id][1] else f"case:{case_id}"
                holder = service_units.setdefault(unit, rating_id)
                assert holder == rating_id, f"{unit} counted twice: {holder} and {rating_id}"
        else:
            holder = hall_units.setdefault((applicant, day), rating_id)
            assert holder == rating_id, f"hall {applicant} {day} counted twice: {holder} and {rating_id}"


ratings_strategy = st.builds(
    lambda rid, kind, cases, score, day, synced: rating(rid, cases, kind=kind, score=score, synced=synced,
                                                       rated_at=(NOON + timedelta(days=day)).isoformat()),
    st.sampled_from(IDS), st.sampled_from(["service", "service", "hall"]),
    st.lists(st.sampled_from(sorted(CASES)), min_size=1, max_size=3), st.integers(1, 5), st.integers(0, 1),
    st.booleans())
messages_strategy = st.lists(st.tuples(st.sampled_from(["h1-w1", "h1-w2"]),
                                       st.lists(ratings_strategy, min_size=1, max_size=6)), min_size=1, max_size=5)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(messages=messages_strategy)
def test_stored_rows_are_always_what_the_answers_said(tmp_path_factory, messages):
    with open_store(tmp_path_factory.mktemp("prop") / "c.sqlite") as store:
        store.add_cases([case_record(c) for c in CASES if c != "c6"], NOON)
        first_answer: dict[str, tuple[str, str, dict, str]] = {}  # id -> (outcome, reason, content, device)
        for n, (device_id, ratings) in enumerate(messages):
            if n == 1:
                store.add_cases([case_record("c6")], NOON)  # pending ratings of c6 are decided now
            answers = send(store, payload(*ratings, device_id=device_id), device_id=device_id,
                           at=NOON + timedelta(hours=n))
            # Every rating of the message is answered once, and every copy of an id the same.
            assert [a[0] for a in answers] == [r["rating_id"] for r in ratings]
            by_id: dict[str, tuple[str, str, str]] = {}
            for answer in answers:
                assert by_id.setdefault(answer[0], answer) == answer
            for rating_id, (_rid, outcome, reason) in by_id.items():
                copy = next(r for r in ratings if r["rating_id"] == rating_id)
                if rating_id not in first_answer:
                    first_answer[rating_id] = (outcome, reason, copy, device_id)
                elif first_answer[rating_id][3] == device_id:  # a resend: the first answer again
                    assert (outcome, reason) == first_answer[rating_id][:2]
                else:
                    assert outcome == "rejected" and "another device" in reason
            # The stored row is the first content answered, with the answer it was given.
            for rating_id, (outcome, reason, copy, device_id_first) in first_answer.items():
                row = stored(store, rating_id)
                assert row is not None
                assert (row["ack_outcome"], row["ack_reason"]) == (outcome, reason)
                assert (row["case_ids"], row["score"], row["kind"], row["device_id"]) == (
                    copy["case_ids"], copy["score"], copy["kind"], device_id_first)
            check_rules(store)


# -- values that overflow when handled ---------------------------------------------------------------


POISON = [
    ("seq", {"seq": 2**63}, "ratings[0].seq"),
    ("year 1", {"rated_at": "0001-01-01T00:00:00+08:00"}, "ratings[0].rated_at"),
    ("year 9999", {"rated_at": "9999-12-31T23:59:59-08:00"}, "ratings[0].rated_at"),
    ("uptime", {"clock_synced": False, "boot_id": "b1", "uptime_s": 1e15}, "ratings[0].uptime_s"),
    ("uptime nan", {"clock_synced": False, "uptime_s": float("nan")}, "ratings[0].uptime_s"),
]


@pytest.mark.parametrize(("field", "poison", "named"), POISON, ids=[p[0] for p in POISON])
def test_a_poison_value_is_rejected_alone_naming_its_field(store, field, poison, named):
    bad, good = rating(IDS[0], ["c1"], **poison), rating(IDS[1], ["c2"])
    data = payload(bad, good)
    with pytest.raises(ProtocolError) as refused:
        decode_rating_message(data)
    found = triage(data, refused.value)
    assert [(r.rating_id, r.outcome) for r in found.rejected] == [(IDS[0], Outcome.REJECTED)]
    assert found.rejected[0].reason.startswith(named) and found.error is None
    assert store.ingest_answers("h1-w1", found.message, NOON) == [(IDS[1], "accepted", "")]


def test_a_rating_whose_handling_overflows_is_answered_rejected_and_the_rest_normally(store):
    # Defence behind the bounds: should a value still overflow (a bug, a new field), that rating alone fails.
    original = store_module._Ingest._day

    def day(self, r):
        if r.rating_id == IDS[0]:
            raise OverflowError("date value out of range")
        return original(self, r)

    with mock.patch.object(store_module._Ingest, "_day", day):
        answers = send(store, payload(rating(IDS[0], ["c1"]), rating(IDS[1], ["c2"])))
    assert answers[0][1] == "rejected" and "out of range" in answers[0][2]
    assert answers[1] == (IDS[1], "accepted", "")
    assert stored(store, IDS[0]) is None and store.totals()["ratings"] == 1


def test_the_collector_answers_every_poison_message_without_losing_the_good_ratings(tmp_path):
    # The same through the service's decode path: nothing "acknowledged without an answer".
    with open_store(tmp_path / "c.sqlite") as store:
        store.add_cases([case_record("c1"), case_record("c2")], NOON)
        for n, (_f, poison, _named) in enumerate(POISON):
            good = rating(f"0190f0a4-2222-7000-8000-00000000000{n}", ["c1" if n % 2 else "c2"])
            data = payload(rating(IDS[n], ["c1"], **poison), good)
            try:
                message = decode_rating_message(data)
            except ProtocolError as err:
                message = triage(data, err).message
            assert message is not None and [r.rating_id for r in message.ratings] == [good["rating_id"]]
            store.ingest_answers("h1-w1", message, NOON)


def test_status_and_case_records_are_bounded_too():
    with pytest.raises(ProtocolError, match=r"^cases\[0\]\.completed_at: must lie from 1970-01-01"):
        decode(CasesMessage, json.dumps(
            {"v": 1, "cases": [json.loads(case_record("c1").model_dump_json()) | {
                "completed_at": "0001-01-01T00:00:00+08:00"}]}))
    status = {"v": 1, "device_id": "t1", "state": "online", "outbox_depth": 2**63}
    with pytest.raises(ProtocolError, match=r"^outbox_depth: "):
        decode(StatusMessage, json.dumps(status))


# -- absurd dates ----------------------------------------------------------------------------------------


def test_hall_ratings_cannot_dodge_once_a_day_with_absurd_dates(store):
    dates = ["1970-01-01T08:00:00+08:00", "2099-12-30T10:00:00+08:00", "2099-12-31T10:00:00+08:00"]
    answers = send(store, payload(*(rating(IDS[n], ["c1"], kind="hall", rated_at=d) for n, d in enumerate(dates))))
    assert [a[1] for a in answers] == ["rejected"] * 3
    assert "a rating cannot precede its case" in answers[0][2]
    assert answers[1][2].startswith("rated_at: 2099-12-30T10:00:00+08:00 is more than 1 day(s) after the collector")
    [today] = send(store, payload(rating(IDS[3], ["c2"], kind="hall")))
    assert today[1] == "accepted"
    [again] = send(store, payload(rating(IDS[4], ["c1"], kind="hall", rated_at=(NOON + timedelta(hours=3))
                                         .isoformat())))
    assert again[1] == "duplicate"
    with pytest.raises(ProtocolError, match="rated_at: must lie from 1970-01-01 to before 2100-01-01"):
        decode(RatingMessage, payload(rating(IDS[5], ["c1"], kind="hall", rated_at="2100-01-01T08:00:00+08:00")))


def test_a_service_rating_dated_before_its_case_is_rejected_now_and_when_its_case_arrives_later(store):
    [old] = send(store, payload(rating(IDS[0], ["c1"], rated_at="1970-01-01T08:00:00+08:00")))
    assert old[1] == "rejected" and "case c1 was completed on 2024-05-06" in old[2]
    # Within the tolerance (a day), a business system that records completion a little late is believed.
    [yesterday] = send(store, payload(rating(IDS[1], ["c2"], rated_at=(NOON - timedelta(days=1)).isoformat())))
    assert yesterday == (IDS[1], "accepted", "")
    [pending] = send(store, payload(rating(IDS[2], ["c6"], rated_at="2001-01-01T08:00:00+08:00")))
    assert pending[1] == "pending"
    store.add_cases([case_record("c6")], NOON)
    assert store.outcome(IDS[2])[0] is Outcome.REJECTED
    assert "a rating cannot precede its case" in store.outcome(IDS[2])[1]


def test_a_future_date_within_the_tolerance_is_believed_and_the_tolerance_is_policy(tmp_path):
    with open_store(tmp_path / "c.sqlite") as store:
        store.add_cases([case_record("c1"), case_record("c2")], NOON)
        [soon] = send(store, payload(rating(IDS[0], ["c1"], rated_at=(NOON + timedelta(hours=20)).isoformat())))
        assert soon[1] == "accepted"
    strict = load_profile("ulanqab", overrides={"rated_at_tolerance_days": 0})
    with Store.open(tmp_path / "s.sqlite", strict, KEY) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.add_cases([case_record("c1")], NOON)
        [late] = send(store, payload(rating(IDS[0], ["c1"], rated_at=(NOON + timedelta(hours=1)).isoformat())))
        assert late[1] == "rejected" and "more than 0 day(s) after" in late[2]


def test_unsynced_ratings_are_placed_by_the_collector_and_not_judged_by_their_own_clock(store):
    [unsynced] = send(store, payload(rating(IDS[0], ["c1"], synced=False, rated_at="1970-01-01T08:00:00+08:00")))
    assert unsynced == (IDS[0], "accepted", "")
    assert stored(store, IDS[0])["day"] == date(2024, 5, 6).isoformat()


# -- envelope errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [True, 1.0, 2, "1"])
def test_only_the_integer_1_is_version_1(v):
    data = payload(rating(IDS[0], ["c1"]), v=v)
    with pytest.raises(ProtocolError, match=r"^v: protocol version must be the integer 1$"):
        decode_rating_message(data)
    found = triage(data, ProtocolError("v", "protocol version must be the integer 1"))
    assert found.rejected == [] and found.message is None and found.first_rating_id == IDS[0]


def test_too_many_ratings_is_an_envelope_error_that_keeps_every_rating():
    data = payload(*(rating(f"0190f0a4-3333-7000-8000-{n:012d}", ["c1"]) for n in range(1001)))
    with pytest.raises(ProtocolError) as refused:
        decode_rating_message(data)
    found = triage(data, refused.value)
    assert found.rejected == [] and found.message is None
    assert found.error.startswith("ratings: ") and found.first_rating_id == "0190f0a4-3333-7000-8000-000000000000"


def test_an_oversized_payload_still_names_its_first_rating():
    data = payload(rating(IDS[0], ["c1"], reasons=["x" * 40] * 20)) + b" " * (256 * 1024)
    with pytest.raises(ProtocolError) as refused:
        decode_rating_message(data)
    found = triage(data, refused.value)
    assert found.error.startswith("payload: ") and found.first_rating_id == IDS[0] and found.rejected == []


def test_an_id_ending_in_a_newline_is_not_an_id(store, tmp_path):
    with pytest.raises(ValueError, match="device_id"):
        store.register_device("h1-w9\n", "h1", "w9")
    entry = rating(IDS[0] + "\n", ["c1"])
    data = payload(entry, rating(IDS[1], ["c1"]))
    with pytest.raises(ProtocolError) as refused:
        decode_rating_message(data)
    found = triage(data, refused.value)
    assert found.rejected == [] and found.error.startswith("ratings[0].rating_id")
    assert [r.rating_id for r in found.message.ratings] == [IDS[1]]


def test_a_refused_message_stores_nothing(store, database):
    with pytest.raises(MessageRefused):
        send(store, payload(rating(IDS[0], ["c1"]), device_id="h1-w9"), device_id="h1-w9")
    assert store.totals()["ratings"] == 0
    assert read_rows(database, "SELECT count(*) FROM ratings") == [(0,)]  # as another connection sees it


# -- the terminal's side of a refusal, against the real collector ------------------------------------------


def test_a_refused_terminal_keeps_its_ratings_splits_them_and_delivers_once_registered(tmp_path, broker):
    # Before, an unregistered terminal was answered "rejected" for every rating and deleted them all.
    topics = Topics()
    config = CollectorConfig.model_validate({
        "collector": {"id": "collector-refusal"}, "broker": {"host": broker.host, "port": broker.port},
        "data": {"dir": str(tmp_path / "data")}, "policy": {"preset": "ulanqab"}})
    events: queue.Queue[tuple[str, object]] = queue.Queue()
    with Outbox(tmp_path / "outbox.sqlite") as box, Collector(config) as collector:
        assert collector.wait_connected(WAIT_S)
        box.add_many(Draft(kind=Kind.SERVICE, case_ids=(f"n{n}",), score=5, rated_at=datetime.now(CST),
                           clock_synced=True) for n in range(8))
        link = MqttLink(LinkSettings(broker.host, broker.port, "hall-new-w1", backoff_min_s=0.05),
                        lambda m: events.put(("ack", m)), lambda up: events.put(("link", up)))
        link.subscribe(topics.ack("hall-new-w1"))
        syncer = Syncer(box, link.publish, topics, "hall-new-w1", batch_size=8, resend_after_s=0.5)
        published: list[int] = []

        def turn(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                published.append(syncer.pump())
                try:
                    kind, value = events.get(timeout=0.05)
                except queue.Empty:
                    continue
                if kind == "link":
                    syncer.on_connection(bool(value))
                else:
                    syncer.on_ack(decode(AckMessage, value.payload))

        with link:
            link.start()
            assert link.wait_connected(WAIT_S)
            time.sleep(0.3)  # the subscription's SUBACK
            turn(2.0)
            assert box.depth() == 8 and syncer.refused and "not registered" in syncer.refused
            assert syncer.in_flight == 8  # split down to single ratings, each kept for its next resend
            with open_store(tmp_path / "data" / "collector.sqlite") as store:
                store.register_device("hall-new-w1", "h1", "w1")
                store.add_cases([case_record(f"n{n}", completed=datetime.now(CST)) for n in range(8)],
                                datetime.now(CST))
            turn(3.0)
            assert box.depth() == 0 and syncer.refused is None and syncer.in_flight == 0
    with open_store(tmp_path / "data" / "collector.sqlite") as store:
        assert store.totals()["accepted"] == 8 and store.totals()["ratings"] == 8


def test_a_receipt_token_or_a_certificate_name_ending_in_a_newline_is_refused(tmp_path):
    token = make_token(KEY, "c1", 2_000_000_000)
    assert verify(token, "c1", KEY, 1_900_000_000) == 2_000_000_000
    with pytest.raises(TokenError, match="expected <expiry digits>"):
        verify(token + "\n", "c1", KEY, 1_900_000_000)
    pki = Pki(tmp_path / "pki")
    pki.init()
    with pytest.raises(PkiError, match="expected 1-64"):
        pki.issue_device("hall01-w01\n")

"""The collector service against a real Mosquitto and a real SQLite file."""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import stat
import time
import uuid
from datetime import datetime
from unittest import mock

import pytest

from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.service import Collector
from hcp.collector.store import Store
from hcp.collector.store import chain as seal_module
from hcp.config.schema import ChainSection, CollectorConfig
from hcp.domain import CST
from hcp.protocol import Topics
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink

NOON = datetime(2024, 5, 6, 12, 0, tzinfo=CST)
WAIT_S = 10
T = Topics()


@pytest.fixture
def setup(tmp_path, broker, database):
    config = CollectorConfig.model_validate({
        "collector": {"id": f"collector-{uuid.uuid4().hex[:8]}", "group_commit": 64, "database": str(database)},
        "broker": {"host": broker.host, "port": broker.port},
        "data": {"dir": str(tmp_path / "data")},
        "policy": {"preset": "ulanqab"}})
    collector = Collector(config)
    with _store(collector) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.register_device("h1-w2", "h1", "w2")
    yield config, collector
    collector.close()


def _store(collector: Collector) -> Store:
    return Store.open(collector.database, collector.profile, load_or_create_key(collector.secret_file))


class Terminal:
    """A test-side MQTT client that publishes like a terminal and collects answers."""

    def __init__(self, broker, *topics: str) -> None:
        self.answers: queue.Queue[Incoming] = queue.Queue()
        self.link = MqttLink(LinkSettings(broker.host, broker.port, f"t-{uuid.uuid4().hex[:8]}", clean_start=True),
                             self.answers.put)
        for topic in topics:
            self.link.subscribe(topic)
        self.link.start()
        assert self.link.wait_connected(WAIT_S)

    def send(self, topic: str, payload: bytes | dict) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.link.publish(topic, data, qos=1)

    def answer(self, timeout: float = WAIT_S) -> dict:
        return json.loads(self.answers.get(timeout=timeout).payload)

    def answer_on(self, topic: str, timeout: float = WAIT_S) -> dict:
        """The next answer on ``topic``, skipping others (e.g. a cases answer delivered again)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.answers.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.topic == topic:
                return json.loads(message.payload)

    def ask(self, topic: str, payload: bytes | dict) -> dict:
        self.send(topic, payload)
        return self.answer()


@pytest.fixture
def terminal(broker):
    with_links = Terminal(broker, T.ack("h1-w1"), T.ack("ghost"), T.cases_ack)
    yield with_links
    with_links.link.close()


def rating(case_id="c1", **extra) -> dict:
    return {"rating_id": str(uuid.uuid4()), "seq": 1, "kind": "service", "case_ids": [case_id], "score": 5,
            "rated_at": NOON.isoformat(), "clock_synced": True, **extra}


def ratings(*items, device_id="h1-w1") -> dict:
    return {"v": 1, "device_id": device_id, "ratings": list(items)}


def cases(*case_ids) -> dict:
    return {"v": 1, "cases": [{"case_id": c, "hall_id": "h1", "window_id": "w1", "item_code": "i1", "item_name": "x",
                               "clerk_id": "k1", "intake": "ok", "applicant_id": "110101199003071234",
                               "completed_at": NOON.isoformat()} for c in case_ids]}


def outcomes(answer: dict) -> list[str]:
    return [r["outcome"] for r in answer["results"]]


def start(collector: Collector, terminal: Terminal) -> None:
    """Start and wait until the collector's subscriptions are live (a probe gets answered)."""
    collector.start()
    assert collector.wait_connected(WAIT_S)
    for _ in range(WAIT_S * 5):
        terminal.send(T.cases, {"v": 1, "cases": []})  # answered with an error, stores nothing
        try:
            terminal.answer(timeout=0.2)
            break
        except queue.Empty:
            continue
    time.sleep(0.2)  # let the answers to earlier probes arrive, then forget them
    while not terminal.answers.empty():
        terminal.answers.get()


def test_ratings_and_cases_are_answered(setup, terminal):
    _config, collector = setup
    start(collector, terminal)
    assert stat.S_IMODE(collector.secret_file.stat().st_mode) == 0o600
    pending = rating("c9")
    assert outcomes(terminal.ask(T.rating("h1-w1"), ratings(pending))) == ["pending"]
    assert outcomes(terminal.ask(T.cases, cases("c1", "c9"))) == ["stored", "stored"]
    first, second = rating(), rating()
    answer = terminal.ask(T.rating("h1-w1"), ratings(first, second))
    assert outcomes(answer) == ["accepted", "duplicate"]
    assert first["rating_id"] in answer["results"][1]["reason"]
    assert terminal.ask(T.rating("h1-w1"), ratings(first, second)) == answer
    collector.close()
    with _store(collector) as store:
        assert store.outcome(pending["rating_id"])[0] == "accepted"
        assert store.totals()["ratings"] == 3


HOSTILE = [
    (T.rating("h1-w1"), b"not json", "payload: not valid JSON"),
    (T.rating("h1-w1"), b"[1, 2]", "payload: must be a JSON object"),
    (T.rating("h1-w1"), b"x" * 1_000_000, "payload: 1000000 bytes is over the limit"),
    (T.rating("h1-w1"), {"v": 2, "device_id": "h1-w1", "ratings": []}, "v: protocol version must be the integer 1"),
    (T.rating("h1-w1"), {"v": 1, "device_id": "h1-w1", "ratings": [{"score": 5}]}, "ratings[0].rating_id"),
    (T.cases, b"{}", "v: Field required"),
    # JSON escapes can spell a lone surrogate, which UTF-8 cannot carry; it must not reach an answer.
    (T.rating("h1-w1"), b'{"v": 1, "device_id": "h1-w1", "ratings": [], "\\ud800": 1}', "payload: not valid JSON"),
    (T.cases, b'{"v": 1, "cases": [], "\\udfff": 1}', "payload: not valid JSON"),
]


@pytest.mark.parametrize(("topic", "payload", "error"), HOSTILE, ids=[e for _t, _p, e in HOSTILE])
def test_unreadable_messages_get_an_error_naming_the_field(setup, terminal, topic, payload, error):
    _config, collector = setup
    start(collector, terminal)
    answer = terminal.ask(topic, payload)
    assert answer["error"].startswith(error)
    assert answer.get("results", []) == []


def test_hostile_ratings_are_rejected_one_by_one_and_the_collector_keeps_serving(setup, terminal, caplog):
    _config, collector = setup
    start(collector, terminal)
    terminal.ask(T.cases, cases("c1", "c2"))
    zero, six, text_seq, good = rating(score=0), rating(score=6), rating(seq="1"), rating("c2")
    answer = terminal.ask(T.rating("h1-w1"), ratings(zero, six, text_seq, good))
    by_id = {r["rating_id"]: r for r in answer["results"]}
    assert by_id[good["rating_id"]]["outcome"] == "accepted"
    assert by_id[zero["rating_id"]]["reason"].startswith("ratings[0].score:")
    assert by_id[six["rating_id"]]["reason"].startswith("ratings[1].score:")
    assert by_id[text_seq["rating_id"]]["reason"].startswith("ratings[2].seq:")
    # A terminal not registered, and one writing another terminal's id into its payload: refused whole, with
    # no results, so the terminal keeps the ratings (they count once it is registered or set right).
    unregistered = rating()
    ghost = terminal.ask(T.rating("ghost"), ratings(unregistered, device_id="ghost"))
    assert "not registered" in ghost["error"] and ghost.get("results", []) == []
    assert ghost["first_rating_id"] == unregistered["rating_id"]
    spoof = terminal.ask(T.rating("h1-w1"), ratings(rating(), device_id="h1-w2"))
    assert spoof["error"] == "device_id h1-w2 does not match the topic's h1-w1"
    assert spoof.get("results", []) == []
    # A topic under the subscription that names no device is logged, not answered.
    with caplog.at_level(logging.WARNING, logger="hcp.collector"):
        terminal.send(f"{T.prefix}/dev//rating", ratings(rating()))
        assert outcomes(terminal.ask(T.rating("h1-w1"), ratings(rating("c1")))) == ["accepted"]
    assert "not a device topic" in caplog.text


def test_crash_between_commit_and_ack_gets_the_same_answer_after_restart(setup, terminal):
    config, collector = setup
    start(collector, terminal)
    terminal.ask(T.cases, cases("c1"))
    message = ratings(rating(), rating())
    # The process "dies" after COMMIT and after publishing the answer, before the PUBACK.
    with mock.patch.object(MqttLink, "ack", autospec=True) as never_acked:
        first = terminal.ask(T.rating("h1-w1"), message)
        collector.close()
    assert never_acked.called
    again = Collector(config)
    try:
        again.start()  # its session, subscriptions included, outlived the crash
        assert again.wait_connected(WAIT_S)
        # The broker delivered it again; the store answered as before. (The cases message may
        # come again too: its PUBACK can race the patch above. Its answer is skipped here.)
        assert terminal.answer_on(T.ack("h1-w1")) == first
    finally:
        again.close()
    assert outcomes(first) == ["accepted", "duplicate"]
    with _store(again) as store:
        assert store.totals()["ratings"] == 2


def test_a_bug_is_answered_by_nothing_and_the_senders_resend_gets_it_stored(setup, terminal, caplog):
    """A message whose handling fails is acknowledged without an answer: held unacknowledged, it would
    take one of the broker's in-flight slots until a reconnect, and a hundred would stop all delivery.
    The terminal keeps the unanswered rating and sends it again; once the bug is gone it is stored."""
    config, collector = setup
    start(collector, terminal)
    terminal.ask(T.cases, cases("c1", "c2"))
    unlucky = ratings(rating("c1", reasons=["X"]))
    real_ingest = Store.ingest_answers

    def fail_on_x(store, device_id, message, received_at):
        if message.ratings[0].reasons == ["X"]:
            raise RuntimeError("injected bug 110101199003071234")
        return real_ingest(store, device_id, message, received_at)

    with caplog.at_level(logging.ERROR, logger="hcp.collector"), \
            mock.patch.object(Store, "ingest_answers", autospec=True, side_effect=fail_on_x):
        for _ in range(3):  # 3 resends (a real terminal waits sync.resend_after_s between them)
            terminal.send(T.rating("h1-w1"), unlucky)
        assert outcomes(terminal.ask(T.rating("h1-w1"), ratings(rating("c2")))) == ["accepted"]
    assert caplog.text.count("acknowledged without an answer") == 3
    assert T.rating("h1-w1") in caplog.text and "RuntimeError" in caplog.text
    assert "110101199003071234" not in caplog.text
    collector.close()
    with _store(collector) as store:
        assert store.totals()["ratings"] == 1  # nothing of the failed message was stored
    again = Collector(config)
    try:
        again.start()
        assert again.wait_connected(WAIT_S)
        # Acknowledged, so the broker does not deliver it again (a PUBACK racing the close above may
        # bring the cases message or the good rating back: their answers are the same as before).
        wanted = unlucky["ratings"][0]["rating_id"]
        terminal.send(T.rating("h1-w1"), unlucky)  # the terminal's next resend, the bug now fixed
        answer = terminal.answer_on(T.ack("h1-w1"))
        while wanted not in [r["rating_id"] for r in answer["results"]]:
            answer = terminal.answer_on(T.ack("h1-w1"))
        assert outcomes(answer) == ["accepted"]
    finally:
        again.close()
    with _store(again) as store:
        assert store.totals()["ratings"] == 2


def test_a_broken_rule_fails_its_message_alone_and_a_database_failure_retries_the_batch(setup, terminal, caplog):
    """Inside one message's savepoint, the storage layer tells the two apart (hcp.collector.exc): a unique key
    broken by a bug is MessageFailed (acknowledged without an answer, named by the engine's error), a disk
    I/O error is DatabaseUnavailable (the whole batch is tried again and then answered)."""
    _config, collector = setup
    start(collector, terminal)
    terminal.ask(T.cases, cases("c1", "c2"))
    real_ingest = Store.ingest_answers
    io_errors = [sqlite3.OperationalError("disk I/O error")] * 2

    def faulty(store, device_id, message, received_at):
        reasons = message.ratings[0].reasons
        if reasons == ["bug"]:  # a real constraint broken, as a bug would
            store._conn.execute("INSERT INTO devices (device_id, hall_id, window_id, registered_at) "
                                "VALUES ('h1-w1', 'h1', 'w1', 'now')")
        if reasons == ["io"] and io_errors:
            raise io_errors.pop()
        return real_ingest(store, device_id, message, received_at)

    with caplog.at_level(logging.ERROR, logger="hcp.collector"), \
            mock.patch.object(Store, "ingest_answers", autospec=True, side_effect=faulty):
        terminal.send(T.rating("h1-w1"), ratings(rating("c1", reasons=["bug"])))
        deadline = time.monotonic() + WAIT_S
        while "acknowledged without an answer" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)  # handled in a batch of its own, so the retry below does not take it again
        assert outcomes(terminal.ask(T.rating("h1-w1"), ratings(rating("c2", reasons=["io"])))) == ["accepted"]
    # the engine's own name for the broken key: sqlite3's IntegrityError, psycopg's UniqueViolation
    assert caplog.text.count("acknowledged without an answer") == 1
    assert "IntegrityError" in caplog.text or "UniqueViolation" in caplog.text
    assert caplog.text.count("could not commit") == 2 and "disk I/O error" in caplog.text
    collector.close()
    with _store(collector) as store:
        assert store.totals()["ratings"] == 1


def test_close_is_safe_twice_and_before_start(setup):
    _config, collector = setup
    collector.close()
    collector.close()


def test_a_failed_commit_is_retried_in_place_and_a_backlog_does_not_stall(setup, terminal, broker, caplog):
    """The broker holds at most max_inflight_messages (100) unacknowledged messages for the collector.
    A commit that fails (disk I/O, a lock) while a backlog arrives must not leave them unacknowledged
    until a reconnect that a healthy connection never makes: nothing more would ever be delivered."""
    config, collector = setup
    config = config.model_copy(update={"collector": config.collector.model_copy(update={"group_commit": 256})})
    collector = Collector(config)
    start(collector, terminal)
    terminal.ask(T.cases, cases(*(f"c{n}" for n in range(150))))
    collector.close()  # its persistent session queues what comes next
    for n in range(150):
        terminal.send(T.rating("h1-w1"), ratings(rating(f"c{n}")))
    real_seal, failing_until = seal_module.seal, time.monotonic() + 1.5

    def seal_failing_for_a_while(conn):
        if time.monotonic() < failing_until:
            raise sqlite3.OperationalError("disk I/O error")
        return real_seal(conn)

    again = Collector(config)
    try:
        with caplog.at_level(logging.ERROR, logger="hcp.collector"), \
                mock.patch("hcp.collector.store.core.seal", side_effect=seal_failing_for_a_while):
            again.start()
            answered = [outcomes(terminal.answer_on(T.ack("h1-w1"), timeout=20)) for _ in range(150)]
    finally:
        again.close()
    assert answered == [["accepted"]] * 150
    assert "could not commit" in caplog.text and "disk I/O error" in caplog.text
    with _store(again) as store:
        assert store.totals()["ratings"] == 150


def test_heads_are_signed_at_shutdown_and_at_the_interval_and_kept_outside_the_database(setup, terminal, broker,
                                                                                        tmp_path):
    config, _collector = setup
    heads_file = tmp_path / "anchor" / "heads.jsonl"
    config = config.model_copy(update={"chain": ChainSection(sign_interval_s=3600, heads_file=heads_file)})
    collector = Collector(config)
    start(collector, terminal)
    assert outcomes(terminal.ask(T.cases, cases("c1", "c2"))) == ["stored", "stored"]
    assert outcomes(terminal.ask(T.rating("h1-w1"), ratings(rating("c1")))) == ["accepted"]
    assert not heads_file.exists()
    collector.close()  # a short run: the clean shutdown signs
    lines = heads_file.read_text("utf-8").splitlines()
    with _store(collector) as store:
        last = seal_module.heads(store._conn)[-1]
        assert len(lines) == 1 and seal_module.head_json(last) == lines[0]
        assert last.seq == store._conn.execute("SELECT max(seq) FROM chain_blocks").fetchone()[0]
        assert seal_module.verify(store._conn, trusted=seal_module.read_heads(heads_file)) == []
    watcher = Terminal(broker, T.chain_head)  # retained: a newcomer gets the last head
    assert json.loads(watcher.answers.get(timeout=WAIT_S).payload) == json.loads(lines[0])
    busy = Collector(config.model_copy(update={"chain": ChainSection(sign_interval_s=0.3, heads_file=heads_file)}))
    try:
        start(busy, terminal)
        assert outcomes(terminal.ask(T.rating("h1-w1"), ratings(rating("c2")))) == ["accepted"]
        deadline = time.monotonic() + WAIT_S
        while heads_file.read_text("utf-8").count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # signed while running, not only at the end
        assert heads_file.read_text("utf-8").count("\n") == 2
        assert json.loads(watcher.answers.get(timeout=WAIT_S).payload)["seq"] > last.seq
    finally:
        busy.close()
        watcher.link.close()

"""Several collectors sharing one broker and one database (issue 16): real ``hcp collector`` processes.

The database is the ``shared_database`` fixture's parameter: one SQLite file today, which the
PostgreSQL store extends with its own kind. The three-collector kill -9 run under a steady stream is the
fault suite's ``shared_kill`` scenario (tests/faults/scenarios.py); here it runs at CI size.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from channel_support import RECEIPT_KEY
from shared import Recorder, SharedCollector, SharedDatabase
from stack import wait_for

from hcp.collector.channels import Channels, Contacts, Entry
from hcp.collector.exc import DatabaseUnavailable
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.service import Collector
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.config.schema import CollectorConfig
from hcp.domain import Channel, now_cst
from hcp.protocol import CaseRecord, RatingMessage, Topics
from hcp.sim.broker import free_port
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink
from hcp.ui.receipt import make_token

pytestmark = pytest.mark.timeout(240)

DEFAULTED, REMINDED, BAD, GOOD = 15, 8, 5, 5


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(request, tmp_path: Path) -> SharedDatabase:
    """The database the collectors of a test share: one SQLite file, or a database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return SharedDatabase.sqlite(tmp_path / "collectors")
    cluster = request.getfixturevalue("pg_cluster")
    name = cluster.fresh_database()
    request.addfinalizer(lambda: cluster.drop_database(name))
    return SharedDatabase.postgresql(tmp_path / "collectors", cluster.url(name))


def _case(case_id: str, done) -> CaseRecord:
    return CaseRecord(case_id=case_id, hall_id="h1", window_id="w1", item_code="I1", item_name="营业执照",
                      clerk_id="E1", intake="ok", completed_at=done)


def _rating(store: Store, case_id: str, score: int) -> None:
    message = RatingMessage.model_validate_json(json.dumps({"v": 1, "device_id": "t1", "ratings": [
        {"rating_id": str(uuid.uuid4()), "seq": 1, "kind": "service", "case_ids": [case_id], "score": score,
         "rated_at": now_cst().isoformat(), "clock_synced": True}]}))
    [answer] = store.ingest("t1", message, now_cst())
    assert answer.outcome.value == "accepted", answer


def _prepare(database: SharedDatabase) -> None:
    """Cases past the rating period (defaults), unrated ones with a phone (reminders), 差评 (alerts), ratings."""
    now = now_cst()
    key = load_or_create_key(database.data / "collector.key")
    with Store.open(database.url, load_profile("ulanqab"), key) as store:
        store.register_device("t1", "h1", "w1")
        store.add_cases([_case(f"old{n}", now - timedelta(days=10)) for n in range(DEFAULTED)], now)
        store.add_cases([_case(f"phone{n}", now - timedelta(hours=30)) for n in range(REMINDED)], now)
        store.add_cases([_case(f"rated{n}", now - timedelta(hours=1)) for n in range(BAD + GOOD)], now)
        contacts = Contacts(store)
        for n in range(REMINDED):
            contacts.add(f"phone{n}", f"1390000{n:04d}")
        for n in range(BAD + GOOD):
            _rating(store, f"rated{n}", 1 if n < BAD else 5)


def _jobs_config(sms: Recorder, platform: Recorder) -> str:
    return (f'[notify]\ngateway_url = "{sms.url}"\ninterval_s = 0.5\nduty_managers = {{h1 = "13800000000"}}\n'
            f'[upstream]\nurl = "{platform.url}"\ninterval_s = 0.5\nsigning = "none"\nbackoff_base_s = 0.5\n'
            '[chain]\nsign_interval_s = 1\n')


def test_three_collectors_run_each_background_job_once(broker, shared_database: SharedDatabase) -> None:
    """Defaults, reminders, alerts and upstream records, with three collectors' timers racing: each exactly once."""
    db = shared_database
    _prepare(db)
    with Recorder(delay_s=0.05) as sms, Recorder(delay_s=0.02) as platform:
        collectors = [SharedCollector(broker, db, f"collector-{n}", policy="ulanqab",
                                      extra=_jobs_config(sms, platform)) for n in range(3)]
        try:
            for collector in collectors:
                collector.start_connected()
            # The first default job runs 10 s after start; upstream then forwards the defaults too.
            wait_for(lambda: platform.count() >= DEFAULTED + BAD + GOOD, 90, "upstream records missing")
            wait_for(lambda: sms.count("reminder:") >= REMINDED and sms.count("alert:") >= BAD, 30,
                     "reminders or alerts missing")
            time.sleep(3)  # a few more rounds of every timer in all three
        finally:
            for collector in collectors:
                collector.stop()
    assert sms.twice() == {} and platform.twice() == {}
    assert (sms.count("reminder:"), sms.count("alert:")) == (REMINDED, BAD)
    assert platform.count() == DEFAULTED + BAD + GOOD
    assert db.scalar("SELECT count(*) FROM ratings WHERE channel = 'system-default'") == DEFAULTED
    assert db.scalar("SELECT count(*) FROM notifications WHERE status = 'sent'") == REMINDED + BAD
    assert db.scalar("SELECT count(*) FROM upstream_outbox WHERE status = 'sent'") == DEFAULTED + BAD + GOOD


# ---- the share group, in-process collectors -------------------------------------------------

class AckCounter:
    """A terminal-like MQTT client: publishes rating messages as ``t1`` and counts the answers per rating id."""

    def __init__(self, broker, device: str = "t1") -> None:
        self.device = device
        self.answered: Counter[str] = Counter()
        self.outcomes: dict[str, str] = {}
        self._lock = threading.Lock()
        self.link = MqttLink(LinkSettings(broker.host, broker.port, f"t-{uuid.uuid4().hex[:8]}", clean_start=True,
                                          session_expiry_s=0), self._heard)
        self.link.subscribe(T.ack(device))
        self.link.start()
        _LINKS.append(self.link)
        assert self.link.wait_connected(10)

    def _heard(self, message: Incoming) -> None:
        with self._lock:
            for result in json.loads(message.payload)["results"]:
                self.answered[result["rating_id"]] += 1
                self.outcomes[result["rating_id"]] = result["outcome"]

    def send(self, count: int, case: str | None = None) -> list[str]:
        """``count`` rating messages of one rating each (of ``case``, or each of a new case); their ids."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        for rating_id in ids:
            self.link.publish(T.rating(self.device), json.dumps({"v": 1, "device_id": self.device, "ratings": [
                {"rating_id": rating_id, "seq": 1, "kind": "service", "case_ids": [case or f"c-{rating_id}"],
                 "score": 5, "rated_at": now_cst().isoformat(), "clock_synced": True}]}).encode())
        return ids

    def all_answered(self, ids: list[str], timeout: float = 15) -> None:
        wait_for(lambda: all(self.answered[i] for i in ids), timeout,
                 f"{sum(1 for i in ids if not self.answered[i])} of {len(ids)} unanswered")


T = Topics()
_LINKS: list[MqttLink] = []


@pytest.fixture(autouse=True)
def _links_closed(broker) -> Iterator[None]:
    """The test terminals' links end with their test, before its broker does."""
    yield
    while _LINKS:
        _LINKS.pop().close()


@pytest.fixture
def group(broker, shared_database: SharedDatabase) -> Iterator[list[Collector]]:
    """Three in-process collectors in share group ``g`` on the shared database, started and subscribed."""
    key = load_or_create_key(shared_database.data / "collector.key")
    with Store.open(shared_database.url, load_profile("henan"), key) as store:
        store.register_device("t1", "h1", "w1")
        store.register_device("t2", "h1", "w1")
        store.add_cases([_case(f"same{n}", now_cst() - timedelta(minutes=5)) for n in range(40)], now_cst())
    members = [Collector(CollectorConfig.model_validate({
        "collector": {"id": f"collector-{n}", "share_group": "g", "database": shared_database.url},
        "broker": {"host": broker.host, "port": broker.port}, "data": {"dir": str(shared_database.data)},
        "policy": {"preset": "henan"}})) for n in range(3)]
    for member in members:
        member.start()
        assert member.wait_connected(10)
    time.sleep(0.5)  # the SUBSCRIBEs follow the CONNACK
    yield members
    for member in members:
        member.close()


def test_each_rating_message_is_answered_by_one_member_of_the_group(broker, group: list[Collector]) -> None:
    terminal = AckCounter(broker)
    ids = terminal.send(30)
    terminal.all_answered(ids)
    time.sleep(1)  # a second answer would come by now
    assert set(terminal.answered.values()) == {1}  # unshared, each of the three would answer each
    assert all(member._link.settings.clean_start for member in group)


def test_one_case_rated_at_once_through_two_members_counts_once(broker, group: list[Collector]) -> None:
    """Two terminals rate the same 40 cases at the same moment; the members race on the unit claims."""
    first, second = AckCounter(broker, "t1"), AckCounter(broker, "t2")
    pairs = [(first.send(1, f"same{n}")[0], second.send(1, f"same{n}")[0]) for n in range(40)]
    first.all_answered([a for a, _ in pairs])
    second.all_answered([b for _, b in pairs])
    outcomes = [sorted((first.outcomes[a], second.outcomes[b])) for a, b in pairs]
    assert all(pair == ["accepted", "duplicate"] for pair in outcomes), outcomes


def test_a_member_gone_gets_no_share_of_the_stream(broker, group: list[Collector]) -> None:
    """Its session ends with it (clean session): Mosquitto would keep handing a kept session its share (#1747)."""
    terminal = AckCounter(broker)
    group[2].close()
    ids = terminal.send(30)
    terminal.all_answered(ids, timeout=10)  # a third would wait in the departed member's session


def test_a_member_that_loses_its_database_steps_aside_and_comes_back(broker, group: list[Collector],
                                                                    caplog) -> None:
    """It acknowledges nothing, says so, leaves the group's subscriptions until a commit works, then rejoins."""
    terminal = AckCounter(broker)
    sick = group[0]
    assert sick._store is not None
    with mock.patch.object(sick._store, "batch", side_effect=DatabaseUnavailable("disk I/O error")):
        held: list[str] = []
        wait_for(lambda: held.extend(terminal.send(1)) or "database unavailable" in sick.status, 10,
                 "the sick member never got a message")
        assert "not acknowledging" in sick.status and "disk I/O error" in sick.status
        time.sleep(0.5)  # its UNSUBSCRIBE reaches the broker
        during = terminal.send(30)
        terminal.all_answered(during)  # the healthy members take the whole stream
        assert not all(terminal.answered[i] for i in held)  # what it holds waits, unacknowledged
    terminal.all_answered(held)  # committed and answered once the database is back
    assert sick.status.endswith("serving")
    after = terminal.send(30)
    terminal.all_answered(after)
    assert set(terminal.answered.values()) == {1}
    assert "leaving the share group's subscriptions" in caplog.text and "rejoining the share group" in caplog.text


def test_the_collector_tells_systemd_it_serves(tmp_path, broker) -> None:
    """``STATUS=`` after ``READY=1``: what `systemctl status hcp-collector` shows (database lost: the test above)."""
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
        proc = subprocess.Popen([sys.executable, "-m", "hcp.cli", "collector", "--broker",
                                 f"127.0.0.1:{broker.port}", "--data-dir", str(tmp_path / "data"), "--policy",
                                 "henan"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            got = [sock.recv(256).decode() for _ in range(2)]
        finally:
            proc.terminate()
            proc.wait(20)
    assert got[0].startswith("READY=1") and got[1] == "STATUS=collector collector: serving"


def test_one_case_rated_at_once_by_two_members_the_phone_page_and_paper_counts_once(
        broker, shared_database: SharedDatabase, tmp_path: Path) -> None:
    """Each case is rated at the same moment at two windows (answered by whichever members the broker picks), on
    the phone page one member serves, and from a paper form: exactly one of the four counts."""
    db, cases = shared_database, [f"race{n}" for n in range(15)]
    key = load_or_create_key(db.data / "collector.key")
    with Store.open(db.url, load_profile("henan"), key) as store:
        store.register_device("t1", "h1", "w1")
        store.register_device("t2", "h1", "w1")
        store.add_cases([_case(case, now_cst() - timedelta(minutes=5)) for case in cases], now_cst())
    port, receipt_key = free_port(), tmp_path / "receipt.key"
    receipt_key.write_bytes(RECEIPT_KEY)
    receipt_key.chmod(0o600)
    page = f'[web]\nlisten = "127.0.0.1:{port}"\n[receipt]\nkey_file = "{receipt_key}"\n'
    members = [SharedCollector(broker, db, f"collector-{n}", extra=page if n == 0 else "") for n in range(3)]
    try:
        for member in members:
            member.start_connected()
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, 20, "the phone page did not start")
        first, second = AckCounter(broker, "t1"), AckCounter(broker, "t2")
        moment = threading.Barrier(4, timeout=30)  # all four channels meet at each case, then each goes
        phone: dict[str, int] = {}
        paper: dict[str, str] = {}

        def at_once(rate: Callable[[str], object]) -> None:
            rng = random.Random()
            for case in cases:
                moment.wait()
                time.sleep(rng.uniform(0, 0.03))  # who is first differs from case to case
                rate(case)

        def phone_rating(case: str) -> None:
            token = make_token(RECEIPT_KEY, case, int(time.time()) + 3600)
            phone[case] = _post(f"http://127.0.0.1:{port}/r/{case}", {"t": token, "score": "3"})

        def paper_forms() -> None:  # what 'hcp import-ratings' does, on its own connection
            with Store.open(db.url, load_profile("henan"), key) as store:
                channels = Channels(store)
                at_once(lambda case: paper.__setitem__(
                    case, str(channels.enter(Entry(case, 4, Channel.PAPER, now_cst()), now_cst()).outcome)))

        threads = [threading.Thread(target=at_once, args=(lambda case: first.send(1, case),)),
                   threading.Thread(target=at_once, args=(lambda case: second.send(1, case),)),
                   threading.Thread(target=at_once, args=(phone_rating,)), threading.Thread(target=paper_forms)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        wait_for(lambda: len(first.answered) == len(second.answered) == len(cases), 20, "a window rating unanswered")
    finally:
        for member in members:
            member.stop()
    accepted = _accepted_per_case(db)
    assert accepted == dict.fromkeys(cases, 1), accepted
    assert set(phone.values()) <= {200, 409} and len(phone) == len(paper) == len(cases)


def _accepted_per_case(db: SharedDatabase) -> dict[str, int]:
    rows = db.rows("SELECT r.case_ids FROM ratings r JOIN rating_outcomes o USING (rating_id) "
                   "WHERE o.outcome = 'accepted' AND r.kind = 'service'")
    return dict(Counter(case for (ids,) in rows for case in json.loads(ids)))


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except OSError:
        return 0


def _post(url: str, fields: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code

"""Paper, hotline and phone entries under the one-rating rules; reminders and 差评 alerts sent once."""

from __future__ import annotations

from datetime import timedelta

from hcp.collector.channels import Channels, Contacts, Entry
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.notify import HttpSmsGateway, NotifyJob, NotifySettings
from hcp.collector.store.chain import verify
from hcp.collector.web import PageSettings, RatingPage
from hcp.domain import Channel, Intake, Kind
from hcp.ui.receipt import ReceiptMaker, make_token
from tests.channel_support import NOW, RECEIPT_KEY, Receiver, case, open_store, window_rating


def test_entries_follow_the_window_rules(database, tmp_path):
    with open_store(tmp_path, database=database) as store:
        store.add_cases([case("P1"), case("P2"), case("F1", intake=Intake.FAILED),
                         case("OLD", completed=NOW - timedelta(days=9))], NOW)
        channels = Channels(store)
        paper = channels.enter(Entry("P1", 4, Channel.PAPER, NOW, ref="F-0001"), NOW)
        assert paper.outcome == "accepted"
        assert channels.enter(Entry("P1", 4, Channel.PAPER, NOW, ref="F-0001"), NOW).outcome == "accepted"  # again
        assert channels.enter(Entry("P1", 5, Channel.HOTLINE, NOW), NOW).outcome == "duplicate"
        assert window_rating(store, "P1") == "duplicate"
        assert window_rating(store, "P2") == "accepted"
        assert channels.enter(Entry("P2", 5, Channel.HOTLINE, NOW), NOW).outcome == "duplicate"
        assert "intake failed" in channels.enter(Entry("F1", 5, Channel.PAPER, NOW), NOW).reason
        assert "rating period ended" in channels.enter(Entry("OLD", 5, Channel.PAPER, NOW), NOW).reason
        assert "差评" in channels.enter(Entry("P2", 1, Channel.PAPER, NOW), NOW).reason
        assert "no such case" in channels.enter(Entry("NOPE", 5, Channel.PAPER, NOW), NOW).reason
        assert "reasons" in channels.enter(Entry("P2", 1, Channel.PAPER, NOW, ("不存在",)), NOW).reason
        assert "future" in channels.enter(Entry("P2", 5, Channel.PAPER, NOW + timedelta(days=1)), NOW).reason
        store.sign_head(NOW)  # verify fails on records no signed head covers
        assert verify(store._conn) == []


def test_hall_rating_once_per_person_per_day(database, tmp_path):
    with open_store(tmp_path, database=database) as store:
        store.add_cases([case("H1"), case("H2")], NOW)  # the same applicant
        channels = Channels(store)
        assert channels.enter(Entry("H1", 5, Channel.QR, NOW, kind=Kind.HALL), NOW).outcome == "accepted"
        assert channels.enter(Entry("H2", 4, Channel.PAPER, NOW, kind=Kind.HALL), NOW).outcome == "duplicate"


def test_page_states_without_a_browser(database, tmp_path):
    with open_store(tmp_path, database=database) as store:
        store.add_cases([case("S1"), case("S2", intake=Intake.FAILED), case("S3", completed=NOW - timedelta(days=8)),
                         case("S4", completed=NOW - timedelta(days=9))], NOW)
        Lifecycle(store).run_defaults(NOW)
        page = RatingPage(store, PageSettings(RECEIPT_KEY), clock=lambda: NOW)

        def status(case_id):
            return page.show(case_id, make_token(RECEIPT_KEY, case_id, int(NOW.timestamp()) + 600))[:2]

        assert status("S1") == (200, "办事评价")
        assert status("S2") == (409, "该办件不开放评价")
        assert status("S4") == (409, "评价期已结束")  # defaulted
        assert status("UNKNOWN")[0] == 404
        token = make_token(RECEIPT_KEY, "S1", int(NOW.timestamp()) + 600)
        assert page.submit("S1", {"t": [token], "score": ["9"]})[0] == 422
        assert page.submit("S1", {"t": [token], "score": ["1"], "text": ["态度差"]})[1] == "感谢您的评价"
        assert page.submit("S1", {"t": [token], "score": ["5"]})[1] == "您已评价"


def test_reminder_and_alert_each_sent_once_across_restarts(database, tmp_path):
    with Receiver(lambda path, body, headers: (200, {"ok": True})) as gateway:
        with open_store(tmp_path, database=database) as store:
            store.add_cases([case("R1", completed=NOW - timedelta(hours=30)), case("R2"),
                             case("R3", completed=NOW - timedelta(hours=30))], NOW)
            Contacts(store).add("R1", "13800000001")
            Contacts(store).add("R3", "13800000003")
            window_rating(store, "R3", 5)  # rated: no reminder
            Channels(store).enter(Entry("R2", 1, Channel.QR, NOW, text="太慢"), NOW)
            settings = NotifySettings({"hall01": "13900000000"}, ReceiptMaker("https://h.example/r/{case_id}?t={token}",
                                                                             RECEIPT_KEY), {"hall01": "示例大厅"})
            run = NotifyJob(store, HttpSmsGateway(gateway.url), settings).run(NOW)
            assert (run.queued, run.sent) == (2, 2)
        with open_store(tmp_path, database=database) as store:  # a restart
            again = NotifyJob(store, HttpSmsGateway(gateway.url), settings).run(NOW + timedelta(hours=2))
            assert (again.queued, again.sent) == (0, 0)
    sent = {body["to"]: body["text"] for _path, body, _headers in gateway.requests}
    assert len(gateway.requests) == 2
    assert "https://h.example/r/R1?t=" in sent["13800000001"]
    alert = sent["13900000000"]
    assert "差评" in alert and "示例大厅" in alert and "A-1" not in alert and "太慢" not in alert


def test_phone_numbers_never_in_logs(database, tmp_path, caplog):
    caplog.set_level("DEBUG")
    with Receiver(lambda path, body, headers: (503, {})) as gateway, open_store(tmp_path, database=database) as store:
        store.add_cases([case("L1", completed=NOW - timedelta(hours=30))], NOW)
        Contacts(store).add("L1", "13800000009")
        NotifyJob(store, HttpSmsGateway(gateway.url), NotifySettings({})).run(NOW)
        status = store._conn.execute("SELECT status, attempts FROM notifications").fetchone()
        assert status == ("pending", 1)
        assert b"13800000009" not in store._conn.execute("SELECT sealed FROM case_contacts").fetchone()[0]
    assert "13800000009" not in caplog.text


def test_channel_services_serve_the_page_from_config(database, tmp_path):
    import urllib.request

    from hcp.collector.channel_services import ChannelServices
    from hcp.config.schema import CollectorConfig

    config = CollectorConfig.model_validate({
        "data": {"dir": str(tmp_path)}, "policy": {"preset": "ulanqab"}, "web": {"listen": "127.0.0.1:0"},
        "receipt": {"key": RECEIPT_KEY.decode()}})
    open_store(tmp_path, database=database).close()  # the key file, and a PostgreSQL database's schema
    with ChannelServices(config, database, tmp_path / "collector.key") as services:
        base = f"http://127.0.0.1:{services._web.port}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
            assert answer.read() == b"ok"
    services.close()  # safe twice

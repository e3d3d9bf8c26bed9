"""The one retry outbox of notifications and upstream records (collector/retry_outbox.py), on real SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta

from hcp.collector.notify import HttpSmsGateway, NotifyJob, NotifySettings
from hcp.collector.retry_outbox import NOTIFICATIONS, UPSTREAM, Backoff, OutboxItem, Outcome, RetryOutbox
from hcp.collector.upstream import Forwarder, HttpJsonAdapter
from hcp.collector.upstream_codes import load_table
from hcp.domain import utc_text
from tests.channel_support import NOW, Receiver, case, open_store, window_rating


def _records(outbox: RetryOutbox, *keys: str, at: datetime = NOW) -> int:
    return outbox.enqueue([(key, "rating", f'{{"id": "{key}"}}') for key in keys], at)


def _row(outbox: RetryOutbox, key: str) -> dict:
    t = outbox.table
    cursor = outbox.store._conn.execute(f"SELECT * FROM {t.name} WHERE {t.key} = ?", (key,))
    return dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))


def _answers(**states: str):
    """An ``attempt`` that answers each key as told (sent, retry, give-up) and notes what it was asked."""
    tried: list[str] = []

    def attempt(item: OutboxItem) -> Outcome:
        tried.append(item.key)
        state = states.get(item.key, "sent")
        return Outcome(state, f"{state} for {item.key}")

    return attempt, tried


def _next_at(outbox: RetryOutbox, key: str) -> datetime:
    return datetime.fromisoformat(_row(outbox, key)["next_at"])


def test_an_ordered_outbox_holds_later_records_behind_one_waiting(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, UPSTREAM, Backoff(10, 1000), ordered=True)
        _records(outbox, "r1", "r2", "r3")
        attempt, tried = _answers(r1="retry")
        assert outbox.drain(NOW, attempt) == (0, 0, 1)
        assert outbox.drain(NOW + timedelta(seconds=5), attempt).retrying == 0  # r1 not due: nothing goes
        assert tried == ["r1"]
        attempt, tried = _answers(r2="give-up")
        assert outbox.drain(_next_at(outbox, "r1"), attempt) == (2, 1, 0)
        assert tried == ["r1", "r2", "r3"]  # in the order queued; a record given up holds nothing back
        assert outbox.statuses() == {"pending": 0, "sent": 2, "rejected": 1}
        assert outbox.given_up_records() == [("r2", "give-up for r2")]


def test_an_unordered_outbox_sends_what_is_due_around_one_waiting(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, NOTIFICATIONS, Backoff(10, 1000))
        outbox.enqueue([("alert:a", "alert", "a"), ("alert:b", "alert", "b")], NOW)
        outbox.enqueue([("alert:c", "alert", "c")], NOW + timedelta(seconds=1))
        attempt, tried = _answers(**{"alert:a": "retry"})
        assert outbox.drain(NOW + timedelta(seconds=1), attempt) == (2, 0, 1)
        assert tried == ["alert:a", "alert:b", "alert:c"]
        assert outbox.statuses() == {"pending": 1, "sent": 2, "failed": 0}
        assert [item.key for item in outbox.due(NOW + timedelta(seconds=2))] == []


def test_backoff_grows_with_failures_and_starts_again_for_the_next_record(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, UPSTREAM, Backoff(10, 1000), ordered=True)
        _records(outbox, "r1", "r2")
        attempt, _tried = _answers(r1="retry", r2="retry")
        now, waits = NOW, []
        for _ in range(9):
            outbox.drain(now, attempt)
            waits.append((_next_at(outbox, "r1") - now).total_seconds())
            now = _next_at(outbox, "r1")
        assert waits[0] == 10  # the first retry after base_s, as [upstream] backoff_base_s says
        for failures, wait in enumerate(waits[1:], start=2):
            ceiling = min(1000, 10 * 2 ** (failures - 1))
            assert ceiling / 2 <= wait <= ceiling, (failures, wait)
        assert waits[-1] >= 500  # capped at 1000, never below half of it
        assert _row(outbox, "r1")["attempts"] == 9
        assert outbox.drain(now, _answers(r2="retry")[0]) == (1, 0, 1)  # r1 goes at last; r2 fails once
        assert _row(outbox, "r2")["attempts"] == 1
        assert (_next_at(outbox, "r2") - now).total_seconds() == 10  # a new record starts at the shortest wait


def test_a_record_is_given_up_after_max_attempts(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, NOTIFICATIONS, Backoff(10, 1000, max_attempts=3))
        outbox.enqueue([("alert:a", "alert", "a"), ("reminder:b", "reminder", "b")], NOW)
        attempt, tried = _answers(**{"alert:a": "retry"})
        now = NOW
        for _ in range(5):
            outbox.drain(now, attempt)
            now += timedelta(hours=1)
        assert tried == ["alert:a", "reminder:b", "alert:a", "alert:a"]  # three attempts, then never again
        row = _row(outbox, "alert:a")
        assert (row["status"], row["attempts"], row["sent_at"]) == ("failed", 3, None)
        assert row["last_error"] == "gave up after 3 attempts: retry for alert:a"
        assert _row(outbox, "reminder:b")["sent_at"] == utc_text(NOW)


def test_giving_up_before_a_try_counts_no_attempt(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, UPSTREAM, ordered=True)
        _records(outbox, "r1")
        assert outbox.drain(NOW, lambda item: Outcome.give_up("nothing to send", tried=False)) == (0, 1, 0)
        row = _row(outbox, "r1")
        assert (row["status"], row["attempts"], row["reason"], row["done_at"]) == ("rejected", 0, "nothing to send",
                                                                                  utc_text(NOW))


def test_enqueue_is_idempotent_by_key(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, UPSTREAM, ordered=True)
        assert _records(outbox, "r1", "r2") == 2
        outbox.drain(NOW, _answers(r1="retry")[0])
        before = _row(outbox, "r1")
        assert outbox.enqueue([("r1", "exclusion", "{}"), ("r3", "rating", "{}")], NOW + timedelta(days=1)) == 1
        assert _row(outbox, "r1") == before  # the record queued first, with its attempts and next try, stays
        assert outbox.statuses()["pending"] == 3


def test_a_restart_keeps_attempts_next_try_and_order(tmp_path):
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, UPSTREAM, Backoff(60, 3600), ordered=True)
        _records(outbox, "r1", "r2")
        outbox.drain(NOW, _answers(r1="retry")[0])
        retry_at = _next_at(outbox, "r1")
    with open_store(tmp_path) as store:
        outbox = RetryOutbox(store, UPSTREAM, Backoff(60, 3600), ordered=True)
        assert outbox.due(retry_at - timedelta(seconds=1)) == []  # r1 still waits, and r2 behind it
        attempt, tried = _answers(r1="retry")
        outbox.drain(retry_at, attempt)
        assert tried == ["r1"] and _row(outbox, "r1")["attempts"] == 2
        assert outbox.statuses() == {"pending": 2, "sent": 0, "rejected": 0}


def test_rows_written_by_the_old_code_read_and_carry_on(tmp_path):
    with open_store(tmp_path) as store:  # the INSERTs and UPDATEs notify.py and upstream.py made before this module
        at, conn = utc_text(NOW), store._conn
        conn.executemany("INSERT OR IGNORE INTO notifications (key, kind, subject, status, next_at, created_at) "
                         "VALUES (?, 'alert', ?, 'pending', ?, ?)",
                         [("alert:a", "a", at, at), ("alert:b", "b", at, at)])
        conn.execute("UPDATE notifications SET status = ?, attempts = ?, last_error = ?, next_at = ?, sent_at = ? "
                     "WHERE key = ?", ("failed", 8, "gateway answered HTTP 503", at, None, "alert:b"))
        conn.executemany("INSERT OR IGNORE INTO upstream_outbox (record_id, kind, payload, status, next_at, "
                         "created_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                         [("r1", "rating", "{}", at, at), ("r2", "rating", "{}", at, at)])
        conn.execute("UPDATE upstream_outbox SET status = ?, attempts = ?, reason = ?, done_at = ? WHERE record_id = ?",
                     ("rejected", 1, "HTTP 422: 渠道编码 6 不受理", at, "r1"))
        conn.execute("UPDATE upstream_outbox SET attempts = ?, last_error = ?, next_at = ? WHERE record_id = ?",
                     (4, "HTTP 503", at, "r2"))
        # autocommit: each statement above is committed on its own
    with open_store(tmp_path) as store:
        notes = RetryOutbox(store, NOTIFICATIONS, Backoff(max_attempts=8))
        upstream = RetryOutbox(store, UPSTREAM, Backoff(max_attempts=5), ordered=True)
        assert notes.statuses() == {"pending": 1, "sent": 0, "failed": 1}
        assert notes.given_up_records() == [("alert:b", "gateway answered HTTP 503")]
        assert upstream.statuses() == {"pending": 1, "sent": 0, "rejected": 1}
        assert upstream.given_up_records() == [("r1", "HTTP 422: 渠道编码 6 不受理")]
        assert upstream.drain(NOW, _answers(r2="retry")[0]) == (0, 1, 0)  # its fifth attempt: given up
        assert upstream.given_up_records()[1] == ("r2", "gave up after 5 attempts: retry for r2")
        assert notes.drain(NOW, _answers()[0]) == (1, 0, 0)


def test_the_first_retry_of_a_notification_and_an_upstream_record_waits_the_base_delay(tmp_path):
    # Before the shared outbox both counted the failure already made as a retry: the first wait was 1-2 x base.
    with Receiver(lambda path, body, headers: (503, {})) as busy, open_store(tmp_path) as store:
        store.add_cases([case("B1")], NOW)
        window_rating(store, "B1", 1)  # a 差评: an alert for the duty manager, and a record upstream
        job = NotifyJob(store, HttpSmsGateway(busy.url), NotifySettings({"hall01": "13900000000"}))
        job.run(NOW)
        assert job.statuses() == {"pending": 1, "sent": 0, "failed": 0}
        Forwarder(store, HttpJsonAdapter(busy.url, load_table("national-2020")), backoff=Backoff(60, 3600)).run(NOW)
        [(alert_next, alert_attempts)] = store._conn.execute("SELECT next_at, attempts FROM notifications")
        [(record_next, record_attempts)] = store._conn.execute("SELECT next_at, attempts FROM upstream_outbox")
    assert (alert_attempts, record_attempts) == (1, 1)
    assert datetime.fromisoformat(alert_next) == NOW + timedelta(seconds=5)
    assert datetime.fromisoformat(record_next) == NOW + timedelta(seconds=60)

"""Job locks and claimed work rows (collector/store/jobs.py) on both engines, over the storage layer's Engine.

:class:`Jobs` gives the mixin what the Store gives it (``_conn`` and ``_unit``) over an Engine, without
the Store's record-write lock, so two connections really hold job locks and row locks at once here, and
the PostgreSQL branch (advisory locks, ``FOR UPDATE SKIP LOCKED``) runs against a real server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hcp.collector.store.engine import Engine, connect
from hcp.collector.store.jobs import JobQueries, job_key
from hcp.collector.store.outboxes import NOTIFICATIONS, UPSTREAM
from tests.pg import Cluster

AT, LATER, LEASE = "2026-05-01T02:00:00+00:00", "2026-05-01T02:10:00+00:00", "2026-05-01T02:05:00+00:00"


class Jobs(JobQueries):
    """The job methods over one Engine, with the Store's unit-of-work rule."""

    def __init__(self, engine: Engine) -> None:
        self._conn = engine  # type: ignore[assignment]

    @contextmanager
    def _unit(self) -> Iterator[None]:
        if self._conn.in_transaction:
            with self._conn.savepoint():  # type: ignore[attr-defined]
                yield
        else:
            with self._conn.transaction():  # type: ignore[attr-defined]
                yield


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "jobs.db")
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return f"postgresql://postgres@127.0.0.1:{cluster.port}/{request.getfixturevalue('pg_database')}"


@pytest.fixture
def engines(database: str) -> Iterator[tuple[Engine, Engine]]:
    """Two connections to one database with both outbox tables, each holding five pending records due at AT."""
    with connect(database, check_same_thread=False) as one, connect(database, check_same_thread=False) as two:
        with one.transaction():
            one.execute("CREATE TABLE notifications (key TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT "
                        "NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_at TEXT NOT NULL, "
                        "last_error TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, sent_at TEXT"
                        + (", row_order BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE)"
                           if one.dialect == "postgresql" else ")"))
            one.execute("CREATE TABLE upstream_outbox (record_id TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT "
                        "NOT NULL, status TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_at TEXT NOT NULL, "
                        "last_error TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', created_at TEXT NOT "
                        "NULL, done_at TEXT" + (", row_order BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE)"
                                                if one.dialect == "postgresql" else ")"))
            for n in range(5):
                one.execute("INSERT INTO notifications (key, kind, subject, status, next_at, created_at) VALUES "
                            "(?, 'reminder', ?, 'pending', ?, ?)", (f"reminder:c{n}", f"c{n}", AT, f"{AT}{n}"))
                one.execute("INSERT INTO upstream_outbox (record_id, kind, payload, status, next_at, created_at) "
                            "VALUES (?, 'rating', '{}', 'pending', ?, ?)", (f"r{n}", AT, f"{AT}{n}"))
        yield one, two


def test_job_keys_are_stable_signed_64_bit() -> None:
    assert job_key("defaults") == job_key("defaults") != job_key("chain-head")
    assert all(-2**63 <= job_key(name) < 2**63 for name in ("defaults", "notify-queue", "upstream-queue"))


def test_a_claimed_record_is_one_senders_until_its_lease_ends(engines: tuple[Engine, Engine]) -> None:
    one, two = Jobs(engines[0]), Jobs(engines[1])
    first = one.claim_outbox_records(NOTIFICATIONS, 3, AT, LEASE, ordered=False)
    second = two.claim_outbox_records(NOTIFICATIONS, 10, AT, LEASE, ordered=False)
    assert [i.key for i in first] == ["reminder:c0", "reminder:c1", "reminder:c2"]
    assert [i.key for i in second] == ["reminder:c3", "reminder:c4"]
    assert two.claim_outbox_records(NOTIFICATIONS, 10, AT, LEASE, ordered=False) == []
    # A sender killed mid-try: after the lease its records are due again, for whoever comes.
    assert len(two.claim_outbox_records(NOTIFICATIONS, 10, LATER, "2026-05-01T02:15:00+00:00", ordered=False)) == 5


def test_an_ordered_outbox_is_taken_from_its_head_by_one_sender(engines: tuple[Engine, Engine]) -> None:
    one, two = Jobs(engines[0]), Jobs(engines[1])
    assert [i.key for i in one.claim_outbox_records(UPSTREAM, 2, AT, LEASE, ordered=True)] == ["r0", "r1"]
    assert two.claim_outbox_records(UPSTREAM, 10, AT, LEASE, ordered=True) == []  # r0 leased: nothing passes it


def test_an_ordered_claim_given_back_is_due_again(engines: tuple[Engine, Engine]) -> None:
    one, two = Jobs(engines[0]), Jobs(engines[1])
    taken = one.claim_outbox_records(UPSTREAM, 3, AT, LEASE, ordered=True)
    one.release_outbox_records(UPSTREAM, taken, LEASE)
    assert [i.key for i in two.claim_outbox_records(UPSTREAM, 10, AT, LEASE, ordered=True)] == [
        "r0", "r1", "r2", "r3", "r4"]


def test_a_job_held_by_one_collector_is_skipped_by_another_on_postgresql(engines: tuple[Engine, Engine]) -> None:
    one, two = Jobs(engines[0]), Jobs(engines[1])
    if engines[0].dialect == "sqlite":
        # BEGIN IMMEDIATE: the second run waits for the first to commit, then runs (and finds nothing to do).
        order: list[str] = []
        with one.exclusive("defaults") as mine:
            assert mine
            other = threading.Thread(target=lambda: _run(two, order))
            other.start()
            other.join(0.5)
            order.append("first committed")
        other.join(10)
        assert order == ["first committed", "second ran"]
        return
    with one.exclusive("defaults") as mine:
        assert mine
        with two.exclusive("defaults") as theirs:
            assert not theirs  # skipped, not waiting
        with two.exclusive("chain-head") as other_job:
            assert other_job  # another job's lock is another key
    with two.exclusive("defaults") as theirs:
        assert theirs  # the lock ended with the first transaction


# PostgreSQL only: SQLite has one writer, so there claims are serialized by BEGIN IMMEDIATE (the test above).
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_skip_locked_lets_two_senders_claim_at_once_on_postgresql(engines: tuple[Engine, Engine]) -> None:
    one, two = Jobs(engines[0]), Jobs(engines[1])
    with engines[0].transaction():  # the first claim's row locks are held until this commits
        first = one.claim_outbox_records(NOTIFICATIONS, 2, AT, LEASE, ordered=False)
        second = two.claim_outbox_records(NOTIFICATIONS, 10, AT, LEASE, ordered=False)  # does not wait
    assert {i.key for i in first} == {"reminder:c0", "reminder:c1"}
    assert {i.key for i in second} == {"reminder:c2", "reminder:c3", "reminder:c4"}


def _run(jobs: Jobs, order: list[str]) -> None:
    with jobs.exclusive("defaults") as mine:
        assert mine
        order.append("second ran")

"""Database errors leave the storage layer as the collector's own (hcp.collector.exc), against real SQLite."""

from __future__ import annotations

import sqlite3

import pytest

from hcp.cli import main
from hcp.collector.exc import DatabaseError, DatabaseFull, DatabaseUnavailable, MessageFailed
from hcp.collector.store import Store
from hcp.collector.store.engine import SqliteEngine
from hcp.collector.store.errors import translate
from hcp.config.policy import load_profile

KEY = bytes(range(32))


def _open(path) -> Store:
    return Store.open(path, load_profile("ordos"), KEY)


def test_a_broken_rule_in_a_savepoint_fails_that_message_alone(tmp_path):
    with _open(tmp_path / "c.sqlite") as store:
        store.register_device("d1", "h1", "w1")
        with store.batch():
            with pytest.raises(MessageFailed, match="UNIQUE constraint failed") as failed, store.savepoint():
                store.register_device("d2", "h1", "w2")
                store._conn.execute("INSERT INTO devices (device_id, hall_id, window_id, registered_at) "
                                    "VALUES ('d1', 'h1', 'w1', 'now')")  # a bug: the key is taken
            assert isinstance(failed.value.__cause__, sqlite3.IntegrityError)
            with store.savepoint():
                store.register_device("d3", "h1", "w3")
        assert [d.device_id for d in store.devices()] == ["d1", "d3"]  # d2 went with its failed savepoint


def test_a_locked_database_is_unavailable_and_the_write_can_be_tried_again(tmp_path):
    path = tmp_path / "c.sqlite"
    with _open(path) as store:
        store._conn.execute("PRAGMA busy_timeout = 50")  # the store waits 30 s by default
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(DatabaseUnavailable, match="locked") as locked:
            store.register_device("d1", "h1", "w1")
        assert not isinstance(locked.value, DatabaseFull | MessageFailed)
        assert isinstance(locked.value.__cause__, sqlite3.OperationalError)
        other.execute("ROLLBACK")
        other.close()
        store.register_device("d1", "h1", "w1")
        assert store.device("d1") is not None


def test_a_full_disk_at_commit_is_a_full_disk(tmp_path):
    from hcp.db import open_db

    path = tmp_path / "full.sqlite"
    _open(path).close()
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    store = Store(SqliteEngine(open_db(path, max_page_count=pages + 1)), load_profile("ordos"), KEY)
    with pytest.raises(DatabaseFull, match="database or disk is full"):
        for n in range(1000):
            store.register_device(f"d{n}", "h1", "w1")
    assert not store._conn.in_transaction
    store.close()


def test_a_file_that_is_not_a_database_is_refused_as_unavailable(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is no SQLite database\n" * 200)
    with pytest.raises(DatabaseUnavailable, match="not a database"):
        _open(path)


def test_the_cli_names_a_file_that_is_not_a_database_in_one_line(tmp_path, capsys):
    (tmp_path / "collector.sqlite").write_bytes(b"this is no SQLite database\n" * 200)
    (tmp_path / "collector.key").write_text(KEY.hex(), "utf-8")
    (tmp_path / "collector.key").chmod(0o600)
    assert main(["devices", "--data-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "collector.sqlite" in err and "not a database" in err


@pytest.mark.parametrize(("error", "expected"), [
    (sqlite3.IntegrityError("UNIQUE constraint failed: rating_claims.unit_key"), MessageFailed),
    (sqlite3.DataError("string or blob too big"), MessageFailed),
    (sqlite3.ProgrammingError("Incorrect number of bindings supplied"), MessageFailed),
    (sqlite3.OperationalError("disk I/O error"), DatabaseUnavailable),
    (sqlite3.OperationalError("database or disk is full"), DatabaseFull),
    (sqlite3.DatabaseError("database disk image is malformed"), DatabaseUnavailable),
])
def test_each_engine_error_has_its_class_and_keeps_its_words(error, expected):
    translated = translate(error)
    assert type(translated) is expected and isinstance(translated, DatabaseError)
    assert str(translated) == str(error)

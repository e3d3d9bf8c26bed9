import sqlite3

import pytest

from hcp.db import migrate, open_db, transaction


def m001_items(db):
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")


def m002_broken(db):
    db.execute("CREATE TABLE half (id INTEGER)")
    db.execute("THIS IS NOT SQL")


def test_migrations_apply_once_and_survive_reopen(tmp_path):
    path = tmp_path / "x.sqlite"
    db = open_db(path)
    assert migrate(db, [m001_items]) == 1
    assert migrate(db, [m001_items]) == 0
    db.conn.close()
    db = open_db(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert migrate(db, [m001_items]) == 0


def test_failed_migration_leaves_no_half_step(tmp_path):
    db = open_db(tmp_path / "x.sqlite")
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, [m001_items, m002_broken])
    assert "half" not in db.table_names()
    assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == ["m001_items"]


def test_transaction_rolls_back_on_error(tmp_path):
    db = open_db(tmp_path / "x.sqlite")
    migrate(db, [m001_items])
    with pytest.raises(RuntimeError), transaction(db):
        db.execute("INSERT INTO items (name) VALUES ('a')")
        raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_failed_commit_leaves_no_open_transaction(tmp_path):
    db = open_db(tmp_path / "x.sqlite")
    migrate(db, [m001_items])
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError), transaction(db):
        db.execute("INSERT INTO child (pid) VALUES (42)")  # the deferred check fails at COMMIT
    assert not db.conn.in_transaction
    with transaction(db):
        db.execute("INSERT INTO items (name) VALUES ('after')")
    assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 1

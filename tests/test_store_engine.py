"""The storage layer's Engine on both databases: a real SQLite file and a real PostgreSQL 15 (tests/pg.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hcp.collector.exc import DatabaseError, DatabaseFull, DatabaseUnavailable, MessageFailed, StoreError
from hcp.collector.store.engine import Engine, connect, is_url, pg_params, pg_sql
from hcp.collector.store.errors import database_errors, translate_pg
from tests.pg import Cluster, free_port


def _url(cluster: Cluster, dbname: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{cluster.port}/{dbname}"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An Engine over a fresh database of either kind, with a table ``t`` (id key, a text and a number)."""
    if request.param == "sqlite":
        database: str | Path = tmp_path / "engine.db"
    else:
        cluster: Cluster = request.getfixturevalue("pg_cluster")
        database = _url(cluster, request.getfixturevalue("pg_database"))
    with connect(database) as db:
        db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, note TEXT, n BIGINT NOT NULL DEFAULT 0)")
        yield db


def _ids(db: Engine) -> list[str]:
    return [row[0] for row in db.execute("SELECT id FROM t ORDER BY id")]


# -- values and placeholders -------------------------------------------------------


def test_values_come_back_as_sqlite_gives_them(engine: Engine):
    blob = "BLOB" if engine.dialect == "sqlite" else "bytea"
    engine.execute(f"CREATE TABLE v (s TEXT, i BIGINT, f DOUBLE PRECISION, b {blob}, flag BIGINT, missing TEXT)")
    engine.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)", ("汉字 'x'", 2**40, 0.5, b"\x00\xff", True, None))
    assert engine.execute("SELECT s, i, f, b, flag, missing FROM v").fetchone() == \
        ("汉字 'x'", 2**40, 0.5, b"\x00\xff", 1, None)
    row = engine.execute("SELECT sum(i), 1 = 1, 1 = 2, count(*) FROM v").fetchone()
    assert row == (2**40, 1, 0, 1)
    assert [type(value) for value in row] == [int, int, int, int]
    assert type(engine.execute("SELECT b FROM v").fetchone()[0]) is bytes


def test_placeholders_skip_literals_and_keep_percent(engine: Engine):
    engine.execute("INSERT INTO t (id, note) VALUES (?, 'why? 100% -- sure')", ("a",))
    engine.execute("INSERT INTO t (id, note) VALUES (:id, :note)", {"id": "b", "note": "50%"})
    rows = engine.execute("SELECT id, note FROM t WHERE note LIKE '%?%' OR note = :note ORDER BY id",
                          {"note": "50%"}).fetchall()
    assert rows == [("a", "why? 100% -- sure"), ("b", "50%")]
    assert engine.execute("SELECT ?2 || ?1", ("x", "y")).fetchone() == ("yx",)
    assert engine.execute("SELECT 7 % 3").fetchone() == (1,)


def test_the_rewrite_itself():
    assert pg_sql("SELECT '?', \"a?\", ? /* ? */ -- ?\n, ?") == \
        ("SELECT '?', \"a?\", %s /* ? */ -- ?\n, %s", False)
    assert pg_sql("SELECT :a::text, 'it''s :b', x % 2") == ("SELECT %(a)s::text, 'it''s :b', x %% 2", False)
    assert pg_sql("SELECT '%'") == ("SELECT '%%'", False)
    assert pg_sql("DO $body$ BEGIN RAISE NOTICE '? %'; END $body$; SELECT ?") == \
        ("DO $body$ BEGIN RAISE NOTICE '? %%'; END $body$; SELECT %s", False)
    assert pg_params("SELECT ?2, ?1", ("a", "b")) == ("SELECT %(2)s, %(1)s", {"1": "a", "2": "b"})
    assert pg_params("SELECT 1", None) == ("SELECT 1", ())


def test_results_of_a_statement_without_rows_read_empty(engine: Engine):
    result = engine.execute("INSERT INTO t (id) VALUES (?)", ("a",))
    assert (result.rowcount, result.fetchone(), result.fetchall()) == (1, None, [])
    assert engine.executemany("UPDATE t SET n = n + ? WHERE id = ?", [(1, "a"), (2, "a"), (3, "zz")]).rowcount == 2
    assert engine.execute("SELECT n FROM t").fetchall() == [(3,)]
    engine.executemany("INSERT INTO t (id) VALUES (?)", [("b",), ("c",)])
    rows = engine.execute("SELECT id, n FROM t ORDER BY id")
    assert [column[0] for column in rows.description] == ["id", "n"]
    assert (rows.fetchmany(2), rows.fetchmany(2), rows.fetchmany(2)) == ([("a", 3), ("b", 0)], [("c", 0)], [])


# -- transactions -------------------------------------------------------------------


def test_a_transaction_commits_or_rolls_back_whole(engine: Engine):
    with engine.transaction():
        engine.execute("INSERT INTO t (id) VALUES ('a')")
    with pytest.raises(RuntimeError), engine.transaction():
        engine.execute("INSERT INTO t (id) VALUES ('b')")
        raise RuntimeError("stop")
    assert _ids(engine) == ["a"]
    assert not engine.in_transaction
    with pytest.raises(StoreError, match="already open"), engine.transaction(), engine.transaction():
        pass


def test_a_failed_statement_in_a_savepoint_rolls_back_only_that_savepoint(engine: Engine):
    with engine.transaction():
        engine.execute("INSERT INTO t (id) VALUES ('a')")
        with engine.savepoint():
            engine.execute("INSERT INTO t (id) VALUES ('b')")
            with pytest.raises(MessageFailed), engine.savepoint():
                engine.execute("INSERT INTO t (id) VALUES ('c')")
                engine.execute("INSERT INTO t (id) VALUES ('a')")  # UNIQUE: aborts until ROLLBACK TO
            engine.execute("INSERT INTO t (id) VALUES ('d')")  # the outer savepoint goes on
    assert _ids(engine) == ["a", "b", "d"]


def test_a_failed_executemany_in_a_savepoint_leaves_the_transaction_usable(engine: Engine):
    """Group commit: one message's batch insert hits a taken key; only its savepoint goes."""
    with engine.transaction():
        engine.execute("INSERT INTO t (id) VALUES ('a')")
        with pytest.raises(MessageFailed), engine.savepoint():
            engine.executemany("INSERT INTO t (id) VALUES (?)", [("b",), ("a",), ("c",)])
        engine.executemany("INSERT INTO t (id) VALUES (?)", [("d",), ("e",)])
    assert _ids(engine) == ["a", "d", "e"]


def test_after_a_failed_statement_only_a_rollback_may_follow_on_both_engines(engine: Engine):
    with pytest.raises(StoreError, match="nothing committed"), engine.transaction():
        engine.execute("INSERT INTO t (id) VALUES ('a')")
        with pytest.raises(MessageFailed):
            engine.execute("INSERT INTO t (id) VALUES ('a')")
        with pytest.raises(StoreError, match="roll back"):
            engine.execute("INSERT INTO t (id) VALUES ('b')")
    assert _ids(engine) == []
    with pytest.raises(StoreError, match="outside a transaction"), engine.savepoint():
        pass


def test_a_transaction_sqlite_rolled_back_itself_goes_no_further(tmp_path: Path):
    """A full disk makes SQLite drop the whole transaction: later statements must not run (and commit) alone."""
    with connect(tmp_path / "full.db") as db:
        db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, b BLOB)")
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0] + 8}")
        with pytest.raises(StoreError, match="rolled back by the database"), db.transaction():
            db.execute("INSERT INTO t VALUES ('a', NULL)")
            with pytest.raises(DatabaseFull), db.savepoint():
                db.execute("INSERT INTO t VALUES ('big', zeroblob(200000))")
            db.execute("INSERT INTO t VALUES ('c', NULL)")
        assert db.execute("SELECT id FROM t").fetchall() == []
        assert not db.in_transaction


def test_close_is_idempotent_and_final(engine: Engine):
    engine.close()
    engine.close()
    assert engine.closed and not engine.in_transaction
    with pytest.raises(StoreError, match="closed"):
        engine.execute("SELECT 1")


# -- dialect helpers ------------------------------------------------------------------


def test_dialect_helpers(engine: Engine):
    rows = [("a", "x"), ("b", "y")]
    insert = engine.insert_ignore("t", ["id", "note"])
    assert engine.executemany_count(insert, rows) == 2
    assert engine.executemany_count(insert, [("b", "z"), ("c", "z")]) == 1  # b was there
    subquery, param = engine.id_list(["a", "c", "nope", "it's"])
    assert [r[0] for r in engine.execute(f"SELECT id FROM t WHERE id IN ({subquery}) ORDER BY id", (param,))] == \
        ["a", "c"]
    empty, none = engine.id_list([])
    assert engine.execute(f"SELECT id FROM t WHERE id IN ({empty})", (none,)).fetchall() == []
    assert len(engine.execute(f"SELECT id FROM t LIMIT {engine.no_limit}").fetchall()) == 3
    assert len(engine.execute("SELECT id FROM t LIMIT ?", (engine.limit(None),)).fetchall()) == 3
    assert len(engine.execute("SELECT id FROM t LIMIT ?", (engine.limit(2),)).fetchall()) == 2
    key = "INTEGER PRIMARY KEY" if engine.dialect == "sqlite" else "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    engine.execute(f"CREATE TABLE appeals (id {key}, what TEXT)")
    first = engine.insert_id("INSERT INTO appeals (what) VALUES (?)", ("one",))
    assert engine.insert_id("INSERT INTO appeals (what) VALUES (?)", ("two",)) == first + 1


# -- errors -----------------------------------------------------------------------------


def test_a_unique_violation_is_message_failed_with_the_cause(engine: Engine):
    engine.execute("INSERT INTO t (id) VALUES ('a')")
    with pytest.raises(MessageFailed) as caught:
        engine.execute("INSERT INTO t (id) VALUES ('a')")
    assert isinstance(caught.value.__cause__, psycopg.errors.UniqueViolation if engine.dialect == "postgresql"
                      else __import__("sqlite3").IntegrityError)
    assert "unique" in str(caught.value).lower()


def test_postgresql_lock_timeout_is_unavailable(pg_cluster: Cluster, pg_database: str):
    url = _url(pg_cluster, pg_database)
    with connect(url) as first, connect(url) as second:
        first.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
        first.execute("INSERT INTO t VALUES ('a')")
        with first.transaction():
            first.execute("UPDATE t SET id = 'b' WHERE id = 'a'")
            with pytest.raises(DatabaseUnavailable) as caught, second.transaction():
                second.execute("SET LOCAL lock_timeout = '100ms'")
                second.execute("UPDATE t SET id = 'c' WHERE id = 'a'")
        assert isinstance(caught.value.__cause__, psycopg.errors.LockNotAvailable)
        assert not second.in_transaction


def test_postgresql_serialization_failure_is_unavailable(pg_cluster: Cluster, pg_database: str):
    url = _url(pg_cluster, pg_database)
    with connect(url) as first, connect(url) as second:
        first.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT)")
        first.execute("INSERT INTO t VALUES ('a', 0)")
        with pytest.raises(DatabaseUnavailable) as caught, second.transaction():
            second.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            second.execute("SELECT n FROM t").fetchall()
            first.execute("UPDATE t SET n = 1")  # commits on its own (autocommit)
            second.execute("UPDATE t SET n = 2")
        assert isinstance(caught.value.__cause__, psycopg.errors.SerializationFailure)


def test_postgresql_deadlock_is_unavailable(pg_cluster: Cluster, pg_database: str):
    url = _url(pg_cluster, pg_database)
    with connect(url) as first, connect(url) as second:
        first.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT)")
        first.executemany("INSERT INTO t VALUES (?, 0)", [("a",), ("b",)])
        first.execute("SET deadlock_timeout = '100ms'")
        second.execute("SET deadlock_timeout = '100ms'")
        failures: list[BaseException] = []

        def lock(db: Engine, mine: str, theirs: str, both_hold: threading.Barrier) -> None:
            try:
                with db.transaction():
                    db.execute("UPDATE t SET n = 1 WHERE id = ?", (mine,))
                    both_hold.wait(5)
                    db.execute("UPDATE t SET n = 1 WHERE id = ?", (theirs,))
            except DatabaseError as err:
                failures.append(err)

        both_hold = threading.Barrier(2)
        threads = [threading.Thread(target=lock, args=(first, "a", "b", both_hold)),
                   threading.Thread(target=lock, args=(second, "b", "a", both_hold))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert [type(err) for err in failures] == [DatabaseUnavailable]
        assert isinstance(failures[0].__cause__, psycopg.errors.DeadlockDetected)


def test_postgresql_connection_drop_is_unavailable(pg_cluster: Cluster, pg_database: str):
    url = _url(pg_cluster, pg_database)
    with connect(url) as victim, connect(url) as admin:
        victim.execute("CREATE TABLE t (id TEXT)")
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
        with pytest.raises(DatabaseUnavailable) as caught, victim.transaction():
            victim.execute("INSERT INTO t VALUES ('a')")
            assert admin.execute("SELECT pg_terminate_backend(?)", (pid,)).fetchone() == (1,)
            victim.execute("INSERT INTO t VALUES ('b')")
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
        assert not victim.in_transaction
        assert admin.execute("SELECT count(*) FROM t").fetchone() == (0,)
        # The next statement outside a transaction reconnects: a server restart is survived.
        assert victim.execute("SELECT pg_backend_pid()").fetchone()[0] != pid


def test_postgresql_reconnect_while_the_server_is_away_is_unavailable(tmp_path):
    with Cluster.create() as cluster:
        url = cluster.url("postgres")
        with connect(url) as engine:
            cluster.stop("immediate")
            with pytest.raises(DatabaseUnavailable):
                engine.execute("SELECT 1")  # the connection breaks
            with pytest.raises(DatabaseUnavailable, match=r"Connection refused|connection failed"):
                engine.execute("SELECT 1")  # reconnecting fails while the server is down
            cluster.start()
            assert engine.execute("SELECT 1").fetchone() == (1,)


def test_postgresql_errors_by_class():
    def error(cls: type[psycopg.Error]) -> DatabaseError:
        return translate_pg(cls("the server's words\nDETAIL: more"))

    assert type(error(psycopg.errors.DiskFull)) is DatabaseFull
    for cls in (psycopg.OperationalError, psycopg.errors.AdminShutdown, psycopg.errors.CannotConnectNow,
                psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected,
                psycopg.errors.LockNotAvailable):
        assert type(error(cls)) is DatabaseUnavailable, cls
    for cls in (psycopg.errors.UniqueViolation, psycopg.errors.CheckViolation, psycopg.DataError,
                psycopg.errors.UndefinedTable):
        assert type(error(cls)) is MessageFailed, cls
    assert str(error(psycopg.OperationalError)) == "the server's words"
    with pytest.raises(DatabaseFull) as caught, database_errors():
        raise psycopg.errors.DiskFull("could not extend file")
    assert isinstance(caught.value.__cause__, psycopg.errors.DiskFull)


# -- connecting -----------------------------------------------------------------------------


def test_a_dsn_with_a_dead_host_first_connects_to_the_live_one(pg_cluster: Cluster, pg_database: str):
    dead = free_port()
    url = (f"postgresql://postgres@127.0.0.1:{dead},127.0.0.1:{pg_cluster.port}/{pg_database}"
           "?target_session_attrs=read-write&connect_timeout=5")
    with connect(url) as db:
        assert db.dialect == "postgresql"
        assert db.execute("SELECT inet_server_port(), current_database()").fetchone() == \
            (pg_cluster.port, pg_database)


def test_no_server_is_unavailable_and_paths_are_sqlite(tmp_path: Path):
    assert is_url("postgres://h/db") and not is_url("postgresql.db") and not is_url(Path("postgresql://x"))
    with pytest.raises(DatabaseUnavailable):
        connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x?connect_timeout=2")
    with connect(tmp_path / "a" / "b.db") as db:
        assert db.dialect == "sqlite"


def test_a_collector_on_sqlite_never_loads_psycopg(tmp_path: Path):
    code = ("import sys; from hcp.collector.store.core import Store; from hcp.collector.store.engine import connect; "
            "from hcp.collector.store.errors import database_errors; "
            f"db = connect({str(tmp_path / 'x.db')!r}); db.execute('SELECT 1'); "
            "print('psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_connection_lost_inside_a_pipeline_is_replaced_at_the_next_transaction(pg_cluster: Cluster,
                                                                                 pg_database: str):
    """Found by the long fault run: a server stopped while a message's inserts were in a pipeline left the
    connection in pipeline mode with a query under way (psycopg: "cannot exit pipeline mode while busy"); it
    looked open and busy, so every later transaction was refused as "already open" until the collector's
    worker gave up. The state is made here as the lost server left it: pipeline mode on, a query sent and
    never read."""
    url = _url(pg_cluster, pg_database)
    with connect(url) as victim, connect(url) as admin:
        victim.execute("CREATE TABLE t (id TEXT)")
        pgconn = victim.connection.pgconn
        pgconn.enter_pipeline_mode()
        pgconn.send_query_params(b"SELECT pg_sleep(0.1)", None)
        pgconn.pipeline_sync()
        with victim.transaction():  # refused as "already open" before: a new connection now
            victim.execute("INSERT INTO t VALUES ('kept')")
        assert admin.execute("SELECT id FROM t").fetchall() == [("kept",)]

"""The collector schema on a real PostgreSQL 15: migrations, append-only records, roles, claims, a standby."""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlite_utils
from psycopg import errors

from hcp.collector.store.pg_schema import (
    CLAIM_SQL,
    MIGRATIONS,
    READ_ONLY,
    RECORD_TABLES,
    RECORD_WRITE_LOCK,
    WORK_TABLES,
    Migration,
    claim_units,
    dba_script,
    grant_statements,
    migrate,
)
from tests.pg import BIN, SUPERUSER, Cluster, wait_for

ROOT = Path(__file__).parent.parent
RATING = ("INSERT INTO ratings (rating_id, device_id, seq, kind, channel, case_ids, score, rated_at, clock_synced, "
          "received_at, day, reasons, hall_id, window_id, ack_outcome, ack_reason) VALUES (%s, 'hall01-w03', 1, "
          "'service', 'window', %s, 5, '2026-12-03T06:00:00Z', 1, '2026-12-03T06:00:01Z', '2026-12-03', '[]', "
          "'hall01', 'w03', 'accepted', '')")


def _migrated(cluster: Cluster, database: str) -> psycopg.Connection:
    conn = psycopg.connect(cluster.dsn(database))
    migrate(conn)
    return conn


def _tables(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'public'")}


def _rating(conn: psycopg.Connection, rating_id: str, case_ids: str = '["c1"]') -> None:
    conn.execute(RATING, (rating_id, case_ids))


# -- migrations ----------------------------------------------------------------


def test_migrations_apply_from_empty_then_a_second_run_does_nothing(pg_cluster, pg_database):
    with psycopg.connect(pg_cluster.dsn(pg_database)) as conn:
        assert migrate(conn) == len(MIGRATIONS)
        assert migrate(conn) == 0
        recorded = [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
        assert recorded == [step.name for step in MIGRATIONS]
        # Every table and view is classified for the collector role's grants, and only once.
        classes = [*RECORD_TABLES, *WORK_TABLES, *READ_ONLY]
        assert len(classes) == len(set(classes))
        assert _tables(conn) == set(classes)


def test_the_migrations_carry_the_sqlite_names():
    from hcp.collector.store.schema import MIGRATIONS as SQLITE

    assert [step.name for step in MIGRATIONS] == [step.__name__ for step in SQLITE]


def test_collectors_starting_together_apply_each_migration_once(pg_cluster, pg_database):
    counts: list[int] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            with psycopg.connect(pg_cluster.dsn(pg_database)) as conn:
                counts.append(migrate(conn))
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(counts) == 3 and sum(counts) == len(MIGRATIONS)


def test_a_migration_that_fails_half_way_leaves_no_trace(pg_cluster, pg_database):
    broken_at = 3  # m004_lifecycle: fails after creating some of its tables and triggers
    step = MIGRATIONS[broken_at]
    half = len(step.statements) // 2
    broken = Migration(step.name, (*step.statements[:half], "SELECT 1 / 0", *step.statements[half:]))
    with psycopg.connect(pg_cluster.dsn(pg_database)) as conn:
        with pytest.raises(errors.DivisionByZero):
            migrate(conn, (*MIGRATIONS[:broken_at], broken, *MIGRATIONS[broken_at + 1:]))
        before = _tables(conn)
        assert "followups" not in before and "chain_heads" not in before
        assert not conn.execute("SELECT 1 FROM schema_migrations WHERE name = %s", (step.name,)).fetchone()
        assert not conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'followups_append_only'").fetchone()
        assert migrate(conn) == len(MIGRATIONS) - broken_at  # the whole step, then the rest
        assert "followups" in _tables(conn)


# -- records -------------------------------------------------------------------


def test_json_text_comes_back_byte_for_byte_and_malformed_json_is_refused(pg_cluster, pg_database):
    with _migrated(pg_cluster, pg_database) as conn:
        odd = '[ "c2","c1" , "\\u0000"]'  # spacing, order and an escape jsonb would rewrite or refuse
        _rating(conn, "r1", odd)
        assert conn.execute("SELECT case_ids FROM ratings WHERE rating_id = 'r1'").fetchone()[0] == odd
        conn.commit()
        with pytest.raises(errors.InvalidTextRepresentation):
            _rating(conn, "r2", "[c1")
        conn.rollback()
        with pytest.raises(errors.CheckViolation):
            _rating(conn, "r3", '{"case": "c1"}')


def test_the_outcomes_view_gives_the_latest_decision_else_the_first_answer(pg_cluster, pg_database):
    with _migrated(pg_cluster, pg_database) as conn:
        for rating_id in ("r1", "r2"):
            _rating(conn, rating_id)
        for outcome in ("pending", "accepted"):
            conn.execute("INSERT INTO rating_decisions (rating_id, outcome, reason, decided_at) VALUES "
                         "('r1', %s, '', 't')", (outcome,))
        rows = conn.execute("SELECT rating_id, received_order, outcome FROM rating_outcomes "
                            "ORDER BY received_order").fetchall()
        assert [(rid, outcome) for rid, _order, outcome in rows] == [("r1", "accepted"), ("r2", "accepted")]
        assert rows[0][1] < rows[1][1]


def _psql(cluster: Cluster, script: str) -> None:
    subprocess.run([str(BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "owner_password=o-secret",
                    "-v", "collector_password=c-secret", "-h", "127.0.0.1", "-p", str(cluster.port),
                    "-U", SUPERUSER, "-d", "postgres"], input=script, text=True, check=True, capture_output=True)


def test_the_collector_role_cannot_change_a_record_and_the_owner_is_stopped_by_the_trigger(pg_cluster):
    name = f"hcp_{uuid.uuid4().hex[:8]}"
    owner, collector = f"{name}_owner", f"{name}_collector"
    _psql(pg_cluster, dba_script(owner, collector, name))  # what docs/install.md tells the DBA to run
    with psycopg.connect(pg_cluster.dsn(name, owner)) as conn:
        migrate(conn, collector=collector)
    with psycopg.connect(pg_cluster.dsn(name, collector), autocommit=True) as conn:
        _rating(conn, "r1")
        assert claim_units(conn, "r1", ["case:c1"])
        conn.execute("INSERT INTO rating_decisions (rating_id, outcome, reason, decided_at) VALUES "
                     "('r1', 'accepted', '', 't')")
        conn.execute("INSERT INTO pending_cases (case_id, rating_id) VALUES ('c1', 'r1')")
        conn.execute("DELETE FROM pending_cases WHERE rating_id = 'r1'")  # a work table: allowed
        for table in RECORD_TABLES:
            for statement in (f"UPDATE {table} SET {_first_column(conn, table)} = NULL", f"DELETE FROM {table}",
                              f"TRUNCATE {table} CASCADE"):
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(statement)
        for statement in ("CREATE TABLE planted (x int)", "DROP TRIGGER ratings_append_only ON ratings",
                          "CREATE OR REPLACE VIEW rating_outcomes AS SELECT 1"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT outcome FROM rating_outcomes").fetchall() == [("accepted",)]
    with psycopg.connect(pg_cluster.dsn(name, owner), autocommit=True) as conn:
        for table in RECORD_TABLES:
            for statement in (f"UPDATE {table} SET {_first_column(conn, table)} = NULL", f"DELETE FROM {table}",
                              f"TRUNCATE {table} CASCADE"):
                with pytest.raises(errors.RestrictViolation, match=f"{table} is append-only"):
                    conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM rating_claims").fetchone()[0] == 1


def _first_column(conn: psycopg.Connection, table: str) -> str:
    return conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                        "ORDER BY ordinal_position LIMIT 1", (table,)).fetchone()[0]


def test_the_docs_show_the_dba_script():
    text = (ROOT / "docs" / "install.md").read_text("utf-8")
    assert "### Collector on PostgreSQL: roles" in text
    assert "\n".join("    " + line for line in dba_script("hcp_owner", "hcp_collector", "hcp").splitlines()) in text
    assert "\n".join(f"    {line};" for line in grant_statements("hcp_collector")) in text


# -- claims --------------------------------------------------------------------


def test_a_rating_claims_all_its_units_or_none(pg_cluster, pg_database):
    with _migrated(pg_cluster, pg_database) as conn:
        _rating(conn, "r1")
        _rating(conn, "r2")
        assert claim_units(conn, "r1", ["case:c1"])
        assert not claim_units(conn, "r2", ["hall:hall01:p1:2026-12-03", "case:c1"])
        assert conn.execute("SELECT unit_key, rating_id FROM rating_claims").fetchall() == [("case:c1", "r1")]


ROUNDS = 300
WRITERS = 4


def _units(round_no: int, writer: int) -> list[str]:
    """The units writer ``writer`` claims in round ``round_no``: a case, a batch or a person-day, some together."""
    case, batch, day = f"case:c{round_no}", f"batch:b{round_no}", f"hall:hall01:p{round_no}:2026-12-03"
    units = [[case], [batch], [day], [case, day]][round_no % 4]
    return units[::-1] if writer % 2 else units  # opposite orders: claim_units must not deadlock


def test_racing_writers_for_one_unit_have_exactly_one_winner(pg_cluster, pg_database):
    _migrated(pg_cluster, pg_database).close()
    start = threading.Barrier(WRITERS)
    won = [[False] * WRITERS for _ in range(ROUNDS)]
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            with psycopg.connect(pg_cluster.dsn(pg_database)) as conn:
                for round_no in range(ROUNDS):
                    start.wait(timeout=30)
                    with conn.transaction():
                        rating_id = f"r{round_no}-{number}"
                        _rating(conn, rating_id)
                        won[round_no][number] = claim_units(conn, rating_id, _units(round_no, number))
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert [sum(row) for row in won] == [1] * ROUNDS
    with psycopg.connect(pg_cluster.dsn(pg_database)) as conn:
        holders = dict(conn.execute("SELECT unit_key, rating_id FROM rating_claims").fetchall())
    for round_no, row in enumerate(won):
        winner = f"r{round_no}-{row.index(True)}"
        assert {holders[key] for key in _units(round_no, 0)} == {winner}


def test_a_lost_claim_is_an_empty_answer_in_read_committed_but_an_error_in_repeatable_read(pg_cluster, pg_database):
    """Why the ingest transaction runs in READ COMMITTED (the module's notes)."""
    with _migrated(pg_cluster, pg_database) as first, psycopg.connect(pg_cluster.dsn(pg_database)) as second:
        for rating_id in ("r1", "r2", "r3"):
            _rating(first, rating_id)
        first.commit()
        second.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        second.execute("SELECT 1 FROM ratings LIMIT 1")  # the snapshot is taken
        assert first.execute(CLAIM_SQL, {"rating_id": "r1", "keys": ["case:c1"]}).fetchall()
        first.commit()
        with pytest.raises(errors.SerializationFailure):
            second.execute(CLAIM_SQL, {"rating_id": "r2", "keys": ["case:c1"]})
        second.rollback()
        second.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        second.execute("SELECT 1 FROM ratings LIMIT 1")
        assert second.execute(CLAIM_SQL, {"rating_id": "r3", "keys": ["case:c1"]}).fetchall() == []


def test_identity_order_is_commit_order_only_under_the_record_write_lock(pg_cluster, pg_database):
    """Why record writers take RECORD_WRITE_LOCK (the module's notes): a cursor over row_order must not skip."""
    dsn = pg_cluster.dsn(pg_database)
    with _migrated(pg_cluster, pg_database) as first, psycopg.connect(dsn) as second, \
            psycopg.connect(dsn, autocommit=True) as reader:
        _rating(first, "r1")
        _rating(second, "r2")
        second.commit()  # r2 commits before r1, with the higher order
        [(seen, cursor)] = reader.execute("SELECT rating_id, row_order FROM ratings").fetchall()
        first.commit()
        [(missed,)] = reader.execute("SELECT rating_id FROM ratings WHERE row_order < %s",
                                     (cursor,)).fetchall()
        assert (seen, missed) == ("r2", "r1")  # a scanner at "read up to r2" would never see r1
        first.execute("SELECT pg_advisory_xact_lock(%s)", (RECORD_WRITE_LOCK,))
        _rating(first, "r3")
        assert not second.execute("SELECT pg_try_advisory_xact_lock(%s)", (RECORD_WRITE_LOCK,)).fetchone()[0]
        second.rollback()
        first.commit()
        assert second.execute("SELECT pg_try_advisory_xact_lock(%s)", (RECORD_WRITE_LOCK,)).fetchone()[0]


# -- replication ---------------------------------------------------------------


def test_a_standby_follows_the_primary_and_takes_writes_once_promoted():
    # A cluster of its own: a base backup copies every database, and the session's cluster holds one per test.
    with Cluster.create() as primary:
        database = primary.fresh_database()
        _migrated(primary, database).close()
        with primary.standby() as standby:
            with psycopg.connect(primary.dsn(database), autocommit=True) as conn:
                _rating(conn, "r1")
            with psycopg.connect(standby.dsn(database), autocommit=True) as replica:
                wait_for(lambda: replica.execute("SELECT count(*) FROM ratings").fetchone()[0] == 1)
                with pytest.raises(errors.ReadOnlySqlTransaction):
                    _rating(replica, "r2")
            standby.promote()
            with psycopg.connect(standby.dsn(database), autocommit=True) as promoted:
                _rating(promoted, "r2")
                assert promoted.execute("SELECT rating_id FROM ratings ORDER BY row_order").fetchall() == [
                    ("r1",), ("r2",)]


# -- the same schema as on SQLite ------------------------------------------------

_TYPES = {"TEXT": "text", "INTEGER": "bigint", "BLOB": "bytea", "REAL": "double precision"}
_PG_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO' AND NOT EXISTS (
    SELECT 1 FROM information_schema.key_column_usage k JOIN information_schema.table_constraints t
    USING (constraint_schema, constraint_name, table_name)
    WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name AND k.column_name = c.column_name)
FROM information_schema.columns c
WHERE c.table_schema = 'public' AND c.table_name != 'schema_migrations'
  AND NOT (c.column_name = 'row_order' AND c.is_identity = 'YES')  -- the order SQLite keeps as rowid
ORDER BY c.table_name, c.ordinal_position
"""


def _sqlite_db() -> sqlite_utils.Database:
    from hcp.collector.store.schema import MIGRATIONS as SQLITE
    from hcp.db import migrate as migrate_sqlite
    from hcp.db import open_db

    db = open_db(":memory:")
    migrate_sqlite(db, SQLITE)
    return db


def _sqlite_columns(db: sqlite_utils.Database) -> dict[str, list[tuple[str, str, bool]]]:
    """table -> [(column, PostgreSQL type, not null other than as the primary key)]; a view's columns as text."""
    tables = db.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND "
                        "name NOT LIKE 'sqlite_%' AND name != '_migrations'").fetchall()
    return {table: [(name, "text" if kind == "view" else _SAME_AS.get((table, name), _TYPES[decl]),
                     bool(notnull) and not pk)
                    for _cid, name, decl, notnull, _default, pk in db.execute(f"PRAGMA table_info({table})")]
            for table, kind in tables}


#: Columns whose SQLite declaration means something else than its usual twin: chain_queue.row_key is
#: BLOB to have no affinity (it keeps a text or integer key as it is); on PostgreSQL every key is text.
_SAME_AS = {("chain_queue", "row_key"): "text"}


def test_every_sqlite_table_column_and_index_has_its_postgresql_twin(pg_cluster, pg_database):
    """A SQLite migration added without its PostgreSQL twin fails here, naming the table."""
    db = _sqlite_db()
    with _migrated(pg_cluster, pg_database) as conn:
        views = {row[0] for row in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")}
        columns: dict[str, list[tuple[str, str, bool]]] = {}
        for table, name, kind, notnull in conn.execute(_PG_COLUMNS):
            columns.setdefault(table, []).append((name, "text" if table in views else kind, notnull))
        pg_indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert columns == _sqlite_columns(db)
    sqlite_indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                                   "name NOT LIKE 'sqlite_%'")}
    assert sqlite_indexes <= pg_indexes
    append_only = {row[0].removesuffix("_no_update") for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_no_update'")}
    assert append_only <= set(RECORD_TABLES)


def test_each_record_table_has_its_append_only_trigger(pg_cluster, pg_database):
    with _migrated(pg_cluster, pg_database) as conn:
        triggered = {row[0] for row in conn.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON "
            "p.oid = t.tgfoid WHERE p.proname = 'hcp_append_only' AND t.tgenabled = 'O'")}
    assert triggered == set(RECORD_TABLES)

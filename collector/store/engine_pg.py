"""The PostgreSQL half of :mod:`hcp.collector.store.engine`: psycopg 3, imported only when a URL is opened.

See engine.py's module docstring for the rules these classes keep.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper, Loader

from hcp.collector.store.engine import Dialect, Engine, Params, Result, marks, pg_params
from hcp.collector.store.errors import translate_pg

log = logging.getLogger("hcp.collector.store")



class _BoolAsInt(Loader):
    """``boolean`` results as 0/1, as SQLite's comparisons give them."""

    def load(self, data: Any) -> int:
        return 1 if bytes(data) == b"t" else 0


class _NumericAsNumber(Loader):
    """``numeric`` (``sum()`` of integers) as ``int`` when whole, else ``float``: what SQLite returns."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode("ascii"))
        return int(value) if value == value.to_integral_value() else float(value)


class _JsonAsText(Loader):
    """``json``/``jsonb`` as the text SQLite stores."""

    def load(self, data: Any) -> str:
        return bytes(data).decode("utf-8")


class _BoolAsBigint(Dumper):
    """A Python ``bool`` parameter as ``bigint`` 0/1: the schema's flags are integers, as on SQLite."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


def _adapt(conn: psycopg.Connection[Any]) -> None:
    adapters = conn.adapters
    adapters.register_loader("bool", _BoolAsInt)
    adapters.register_loader("numeric", _NumericAsNumber)
    adapters.register_loader("json", _JsonAsText)
    adapters.register_loader("jsonb", _JsonAsText)
    adapters.register_dumper(bool, _BoolAsBigint)


class PostgresEngine(Engine):
    """PostgreSQL through psycopg 3: one autocommit connection, explicit transaction blocks."""

    dialect: Dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any], url: str = "", connect_timeout: int = 10) -> None:
        super().__init__()
        self._conn = conn
        self._url, self._connect_timeout = url, connect_timeout
        self._types: dict[str, dict[str, str]] = {}
        self._deferred: list[str] = []  # savepoint statements not sent yet
        self._dropped: set[str] = set()  # savepoints rolled back before they were sent
        _adapt(conn)

    def _unusable(self) -> bool:
        """Whether the connection cannot carry a new transaction: closed, broken, or left in pipeline mode by
        a connection lost mid-pipeline (psycopg: "cannot exit pipeline mode while busy"), which looks open."""
        conn = self._conn
        if conn.closed or conn.broken:
            return True
        pgconn = conn.pgconn
        return pgconn.status != pq.ConnStatus.OK or pgconn.pipeline_status != pq.PipelineStatus.OFF

    def _revive(self) -> None:
        # Called only outside the engine's transactions and pipelines, so a pipeline still on is a dead one.
        if not self._url or not self._unusable():
            return
        if not self._conn.closed:
            with contextlib.suppress(Exception):  # whatever state it is in, it is given up
                self._conn.close()
        try:
            conn = _connect(self._url, self._connect_timeout)
        except psycopg.Error as err:
            raise translate_pg(err) from err
        _adapt(conn)
        self._conn, self._aborted = conn, False
        self._deferred.clear()
        self._dropped.clear()
        log.warning("reconnected to the collector database (%s:%s)", conn.info.host, conn.info.port)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection, for the migrations (``pg_schema``) and nothing else."""
        return self._conn

    @property
    def in_transaction(self) -> bool:
        if self._closed or self._conn.closed:
            return False
        # ACTIVE: statements of a pipeline are under way (inside the transaction that opened it).
        return self._conn.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR,
                                                      pq.TransactionStatus.ACTIVE)

    def _execute(self, sql: str, params: Params) -> Result:
        query, values = pg_params(sql, params)
        return Result(self._with_deferred(lambda: self._conn.execute(query, values)),  # type: ignore[arg-type]
                      "postgresql")

    def _executemany(self, sql: str, rows: list[Params]) -> Result:
        cursor = self._conn.cursor()
        if not rows:
            return Result(cursor, "postgresql")
        query, _ = pg_params(sql, rows[0])
        self._with_deferred(lambda: cursor.executemany(query, [pg_params(sql, row)[1] for row in rows]))  # type: ignore[arg-type]
        return Result(cursor, "postgresql")

    # Savepoints cost a round trip each way, twice per message (the service's and the unit's). They are
    # sent with the next statement instead, in one pipeline; one nothing ran in is never sent at all;
    # COMMIT and ROLLBACK make those still waiting unnecessary.
    def _raw(self, sql: str) -> None:
        verb, _, name = sql.rpartition(" ")
        if verb == "SAVEPOINT":
            self._deferred.append(sql)
        elif verb == "RELEASE SAVEPOINT":
            if name in self._dropped:
                self._dropped.discard(name)
            elif self._deferred and self._deferred[-1] == f"SAVEPOINT {name}":
                self._deferred.pop()  # nothing ran inside it: neither is sent
            else:
                self._deferred.append(sql)
        elif verb == "ROLLBACK TO SAVEPOINT":
            waiting = f"SAVEPOINT {name}"
            if waiting in self._deferred:  # never sent: nothing inside it reached the server
                del self._deferred[self._deferred.index(waiting):]
                self._dropped.add(name)
            else:  # sent before everything still waiting, which lay inside it: rolled back with it
                self._deferred.clear()
                self._conn.execute(sql)
        else:  # BEGIN, COMMIT, ROLLBACK
            self._deferred.clear()
            self._dropped.clear()
            self._conn.execute(sql)

    def _with_deferred(self, step: Any) -> Any:
        """Run ``step`` (statements on the connection) after the savepoint statements waiting, in one pipeline."""
        if not self._deferred:
            return step()
        waiting, self._deferred = self._deferred, []
        with self._conn.pipeline():
            for statement in waiting:
                self._conn.execute(statement)
            return step()

    def _send_deferred(self) -> None:
        """Send the waiting savepoint statements now (before a COPY, which a pipeline cannot hold)."""
        if self._deferred:
            self._with_deferred(lambda: None)

    def _close(self) -> None:
        self._conn.close()

    @property
    def row_order(self) -> str:
        return "row_order"

    def json_elements(self, column: str, alias: str) -> str:
        return f"jsonb_array_elements_text(CAST({column} AS jsonb)) AS {alias}(value)"

    def id_list(self, ids: Iterable[str]) -> tuple[str, Any]:
        return "SELECT unnest(CAST(? AS text[])) AS value", list(ids)

    def insert_ignore(self, table: str, columns: Sequence[str], values: str | None = None) -> str:
        return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values or marks(columns)}) "
                "ON CONFLICT DO NOTHING")

    @property
    def no_limit(self) -> str:
        return "ALL"

    def limit(self, count: int | None) -> int | None:
        return count  # LIMIT NULL is no limit

    def fetch_all(self, statements: Sequence[tuple[str, Params]]) -> list[list[tuple[Any, ...]]]:
        def step() -> list[list[tuple[Any, ...]]]:
            waiting, self._deferred = self._deferred, []
            with self._conn.pipeline():
                for statement in waiting:
                    self._conn.execute(statement)
                cursors = []
                for sql, params in statements:
                    query, values = pg_params(sql, params)
                    cursors.append(self._conn.execute(query, values))  # type: ignore[arg-type]
            return [cursor.fetchall() for cursor in cursors]

        return self._run(step)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # One INSERT of unnest()ed column arrays: one round trip and one statement text (prepared once)
        # whatever the number of rows, and it can wait in a pipeline (COPY cannot).
        if not rows:
            return
        types = self._column_types(table)
        arrays = ", ".join(f"%b::{types[column]}[]" for column in columns)  # binary: no per-element quoting
        sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        values = [list(column) for column in zip(*rows, strict=True)]
        self._run(lambda: self._with_deferred(lambda: self._conn.execute(sql, values)))  # type: ignore[arg-type]

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        # The statements inside are sent without waiting for each answer; a failure among them is raised
        # at the first answer read or at the end of the block, translated like any other.
        try:
            with self._conn.pipeline():
                yield
        except psycopg.Error as err:
            self._aborted = self._open
            raise translate_pg(err) from err

    def _column_types(self, table: str) -> dict[str, str]:
        """column -> its type's name (``text``, ``bigint`` …), read once per table: the schema does not change
        under a running collector."""
        if table not in self._types:
            self._types[table] = dict(self._run(lambda: self._conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s", (table,)).fetchall()))
        return self._types[table]

    def executemany_count(self, sql: str, rows: Iterable[Params]) -> int:
        # psycopg's rowcount after executemany is not the rows inserted (ON CONFLICT DO NOTHING skips
        # some): count the rows each statement returns instead, still in one pipeline.
        rows = list(rows)
        if not rows:
            return 0

        def step() -> int:
            self._send_deferred()
            cursor = self._conn.cursor()
            query, _ = pg_params(f"{sql} RETURNING 1", rows[0])
            cursor.executemany(query, [pg_params(sql, row)[1] for row in rows], returning=True)  # type: ignore[arg-type]
            count = len(cursor.fetchall())
            while cursor.nextset():
                count += len(cursor.fetchall())
            return count

        return self._run(step)

    def insert_id(self, sql: str, params: Params = None, column: str = "id") -> int:
        row = self.execute(f"{sql} RETURNING {column}", params).fetchone()
        assert row is not None
        return row[0]


def connect_pg(url: str, connect_timeout: int) -> PostgresEngine:
    """A :class:`PostgresEngine` over ``url`` in autocommit (libpq's URL rules: several hosts, target_session_attrs).

    It reconnects by itself after losing the server, before the next transaction.
    """
    return PostgresEngine(_connect(url, connect_timeout), url, connect_timeout)


def _connect(url: str, connect_timeout: int) -> psycopg.Connection[Any]:
    timeout = {} if "connect_timeout" in url else {"connect_timeout": connect_timeout}
    conn = psycopg.connect(url, autocommit=True, **timeout)
    # psycopg prepares a statement after its fifth run, and PostgreSQL then tries a generic plan, made
    # without the parameters' values: for "key IN (SELECT unnest(list))" it guesses the list's length and
    # scans the whole table (2.5 ms a lookup at 24,000 cases instead of 0.1). Plans are made with the values.
    conn.execute("SET plan_cache_mode = force_custom_plan")
    return conn

"""One database interface over SQLite (sqlite3) and PostgreSQL (psycopg 3) for the storage layer.

Next step (issue 13), what the Store swap needs:

* ``Store.__init__`` takes an :class:`Engine` (``connect(database)``) instead
  of an ``sqlite_utils.Database``; ``self._conn.execute`` / ``executemany``
  become ``self._engine.execute`` / ``executemany`` (same ``?``/``:name`` SQL);
  ``Store.batch`` is :meth:`Engine.transaction` plus ``seal``; ``Store.savepoint``
  is :meth:`Engine.savepoint`; ``conn.in_transaction`` is :attr:`Engine.in_transaction`.
  The Engine already raises the collector's ``DatabaseError`` classes, so
  ``database_errors()`` is kept only around code that still holds a raw connection.
* Each ``# sqlite-only:`` construct gets its dialect form, with the helpers
  below: ``json_each(?)`` -> :meth:`Engine.id_list`; ``INSERT OR IGNORE`` ->
  :meth:`Engine.insert_ignore`; ``LIMIT -1`` -> :meth:`Engine.no_limit`;
  ``lastrowid`` -> :meth:`Engine.insert_id`; ``total_changes`` ->
  :meth:`Engine.executemany_count`. ``rowid`` -> ``row_order``, ``PRAGMA``,
  ``typeof``/``hex``/``json_array`` (the chain's canonical bytes), ``date(...,
  '+8 hours')``, sums of booleans and ``sqlite_master`` need hand-written
  PostgreSQL twins (collector/store/pg_schema.py's notes say which).
* The PostgreSQL classes live in engine_pg.py, imported by :func:`connect`
  only for a URL, so a collector on SQLite never loads psycopg.
* Migrations: SQLite keeps ``hcp.db.migrate`` on :attr:`Engine.sqlite`;
  PostgreSQL runs ``pg_schema``'s. Config validation still refuses URLs: it
  opens to users only once the Store runs on PostgreSQL.

Rules that make both engines look like SQLite to the layer:

* **Placeholders.** The layer writes SQLite's ``?`` and ``:name`` (and
  ``?NNN``); on PostgreSQL they are rewritten to psycopg's server-side
  ``%s`` / ``%(name)s`` outside string literals, quoted identifiers and
  comments, a literal ``%`` becomes ``%%``, and ``::`` casts are left alone.
  Parameters are always passed (an empty tuple if none), so the escaping holds
  for every statement. Server-side binding (psycopg's default) is kept on
  purpose: values never enter the SQL text. Dollar-quoted bodies are kept too;
  not understood: ``E'…\''`` backslash escapes, jsonb's ``?`` operators (write
  ``jsonb_exists()``), ``a[lo:hi]`` slices with a named bound.
* **Values.** text -> ``str``, integers -> ``int``, ``bytea`` -> ``bytes``,
  ``double precision`` -> ``float`` on both. On PostgreSQL a ``boolean``
  result is read as ``0``/``1`` and a Python ``bool`` parameter is sent as a
  ``bigint`` 0/1 (SQLite has no booleans: the schema's flags are integers);
  ``numeric`` (what ``sum()`` of ``bigint`` returns) is read as ``int`` when
  whole, else ``float``; ``json``/``jsonb`` are read as their text, as SQLite
  stores JSON. Times are text columns on both engines (pg_schema.py).
  PostgreSQL is stricter about parameter types: an ``int`` parameter compared
  with a ``text`` column is an error there (SQLite compares anyway).
* **Transactions.** PostgreSQL runs in autocommit with explicit ``BEGIN`` /
  ``COMMIT``: no connection idles in a transaction. After a failed statement
  inside a transaction both engines refuse further statements until the
  enclosing :meth:`Engine.savepoint` rolls back to itself or the
  :meth:`Engine.transaction` rolls back: PostgreSQL's rule, enforced on SQLite
  too so code written on one runs on the other.
* **Errors.** Every driver error leaves the Engine as the collector's
  (:func:`hcp.collector.store.errors.translate_any`), the driver's as ``__cause__``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlite_utils

from hcp.collector.exc import DatabaseUnavailable, StoreError
from hcp.collector.store.errors import engine_errors, translate_any
from hcp.db import json_list, open_db

if TYPE_CHECKING:
    import psycopg

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any] | Mapping[str, Any] | None
_URL_SCHEMES = ("postgresql://", "postgres://")

# -- placeholders ---------------------------------------------------------------

#: What the rewrite must step over whole (literals, identifiers, comments), or rewrite (placeholders, %).
_TOKENS = re.compile(r"""
    (?P<skip>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
  | (?P<numbered>\?\d+)
  | (?P<qmark>\?)
  | (?P<named>(?<!:):[A-Za-z_][A-Za-z0-9_]*)
  | (?P<percent>%)
""", re.VERBOSE | re.DOTALL)


@lru_cache(maxsize=1024)
def pg_sql(sql: str) -> tuple[str, bool]:
    """SQLite's ``?`` / ``?NNN`` / ``:name`` statement in psycopg's ``%s`` / ``%(name)s`` style.

    ``:name`` becomes ``%(name)s``, ``?NNN``
    ``%(NNN)s`` (see :func:`pg_params`), a bare ``?`` ``%s``. Literals, quoted
    identifiers and comments are kept as written, except that every ``%`` is
    doubled (psycopg reads the whole text). Returns the statement and whether
    it has numbered parameters.
    """
    numbered = False

    def rewrite(match: re.Match[str]) -> str:
        nonlocal numbered
        kind, text = match.lastgroup, match.group()
        if kind == "skip" or kind == "percent":
            return text.replace("%", "%%")
        if kind == "qmark":
            return "%s"
        numbered = numbered or kind == "numbered"
        return f"%({text[1:]})s"

    return _TOKENS.sub(rewrite, sql), numbered


def pg_params(sql: str, params: Params) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
    """The statement and parameters to give psycopg for SQLite-style ``sql`` and ``params`` (always passed)."""
    if params is None:
        params = ()
    query, numbered = pg_sql(sql)
    if numbered and not isinstance(params, Mapping):
        # ?NNN: SQLite numbers parameters from 1; psycopg takes them by name.
        return query, {str(i): value for i, value in enumerate(params, 1)}
    return query, params


# -- results --------------------------------------------------------------------


class Result:
    """A statement's outcome, alike on both engines: rows (fetchone/fetchall/iteration), rowcount, lastrowid.

    A statement that returns no rows reads as empty (psycopg would raise).
    """

    def __init__(self, cursor: sqlite3.Cursor | psycopg.Cursor[Any], dialect: Dialect) -> None:
        self._cursor = cursor
        #: None until known: inside a PostgreSQL pipeline the answer comes when it is first read.
        self._rows: bool | None = True if dialect == "sqlite" else None
        #: SQLite's last inserted rowid; None on PostgreSQL (use :meth:`Engine.insert_id`).
        self.lastrowid: int | None = cursor.lastrowid if isinstance(cursor, sqlite3.Cursor) else None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def _has_rows(self) -> bool:
        # Read when first asked, not at construction: a statement sent in a pipeline is only described
        # once the pipeline is done (do not read results inside one).
        if self._rows is None:
            self._rows = self._cursor.description is not None
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._fetch(self._cursor.fetchone) if self._has_rows() else None

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        return self._fetch(self._cursor.fetchmany, size) if self._has_rows() else []

    @property
    def description(self) -> Sequence[Sequence[Any]] | None:
        """The columns (name first), or None for a statement without rows."""
        return self._cursor.description

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._fetch(self._cursor.fetchall) if self._has_rows() else []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    @staticmethod
    def _fetch(step: Any, *args: Any) -> Any:
        try:
            return step(*args)
        except engine_errors() as err:
            raise translate_any(err) from err


# -- the engine -----------------------------------------------------------------


class Engine:
    """A connection to the collector database on either engine; see the module's rules."""

    dialect: Dialect

    def __init__(self) -> None:
        self._savepoints = 0
        self._aborted = False  # a statement failed in the transaction: only a rollback may follow
        self._open = False  # inside transaction(): the connection must still be in a transaction
        self._closed = False

    # -- life ---------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back); safe twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- statements ---------------------------------------------------------

    def execute(self, sql: str, params: Params = None) -> Result:
        """Run one statement (SQLite's ``?``/``:name`` placeholders) and return its :class:`Result`."""
        return self._run(lambda: self._execute(sql, params))

    def executemany(self, sql: str, rows: Iterable[Params]) -> Result:
        """Run one statement for each parameter row; ``rowcount`` is the sum over the rows."""
        return self._run(lambda: self._executemany(sql, list(rows)))

    def _run(self, step: Any) -> Any:
        if self._closed:
            raise StoreError("the database connection is closed")
        if not self._open:
            self._revive()
        self._check_not_lost()
        if self._aborted:
            raise StoreError("a statement failed in this transaction: roll back to a savepoint or roll back first")
        try:
            return step()
        except engine_errors() as err:
            self._aborted = self._open
            raise translate_any(err) from err

    def _check_not_lost(self) -> None:
        """Refuse to go on outside the transaction a block believes it is in.

        SQLite rolls a whole transaction back on some errors (a full disk), and
        a PostgreSQL connection can drop: the next statement would otherwise
        run (and commit) on its own.
        """
        if self._open and not self.in_transaction:
            raise DatabaseUnavailable("the transaction was rolled back by the database (or the connection was "
                                      "lost): nothing of it was kept")

    # -- transactions -------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Engine]:
        """BEGIN … COMMIT, or ROLLBACK when the block raises (or COMMIT fails); not nested: use savepoint()."""
        self._revive()  # first: a connection lost in the last transaction may still look busy
        if self.in_transaction:
            raise StoreError("a transaction is already open: use savepoint() inside it")
        self._control(self._begin_sql)
        self._open = True
        try:
            try:
                yield self
            except BaseException:
                self._rollback()
                raise
            try:
                if self._aborted:  # PostgreSQL would answer COMMIT with a silent ROLLBACK
                    raise StoreError("a statement failed in this transaction and was not rolled back: "
                                     "nothing committed")
                self._check_not_lost()
                self._control("COMMIT")
            except BaseException:
                self._rollback()
                raise
        finally:
            self._open = False

    @contextmanager
    def savepoint(self) -> Iterator[Engine]:
        """A savepoint inside :meth:`transaction` (nestable): when the block raises, only it is rolled back.

        Should the rollback to the savepoint fail too (the connection is
        gone, or SQLite rolled the whole transaction back for a full disk),
        the whole transaction is rolled back and the block's own error raised.
        """
        if not self.in_transaction:
            raise StoreError("savepoint outside a transaction: use transaction()")
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        try:
            self._run(lambda: self._raw(f"SAVEPOINT {name}"))
            try:
                yield self
            except BaseException:
                self._roll_back_to(name)
                raise
            self._run(lambda: self._raw(f"RELEASE SAVEPOINT {name}"))
        finally:
            self._savepoints -= 1

    def _roll_back_to(self, name: str) -> None:
        if not self.in_transaction:
            return  # the transaction is gone: transaction() ends it
        try:
            self._raw(f"ROLLBACK TO SAVEPOINT {name}")
            self._raw(f"RELEASE SAVEPOINT {name}")
            self._aborted = False
        except engine_errors():
            self._rollback()

    def _rollback(self) -> None:
        """Roll the transaction back if there is one; never raises (the connection may be gone)."""
        self._aborted = False
        try:
            if self.in_transaction:
                self._raw("ROLLBACK")
        except engine_errors():
            pass

    def _control(self, sql: str) -> None:
        """A transaction-control statement, its error translated."""
        if self._closed:
            raise StoreError("the database connection is closed")
        try:
            self._raw(sql)
        except engine_errors() as err:
            raise translate_any(err) from err

    # -- dialect helpers ----------------------------------------------------

    def id_list(self, ids: Iterable[str]) -> tuple[str, Any]:
        """A subquery of the given text ids (column ``value``) and its one parameter: ``x IN (<sql>)``."""
        raise NotImplementedError

    def insert_ignore(self, table: str, columns: Sequence[str], values: str | None = None) -> str:
        """``INSERT`` of ``columns`` into ``table`` that skips a row whose key is already there.

        ``values``: the VALUES list's SQL (default one ``?`` per column).
        """
        raise NotImplementedError

    @property
    def no_limit(self) -> str:
        """The LIMIT clause's literal for "no limit" (``LIMIT -1`` / ``LIMIT ALL``)."""
        raise NotImplementedError

    def limit(self, count: int | None) -> int | None:
        """The parameter of ``LIMIT ?`` for at most ``count`` rows (None: all)."""
        raise NotImplementedError

    def insert_id(self, sql: str, params: Params = None, column: str = "id") -> int:
        """Run an INSERT of one row and return its generated ``column``."""
        raise NotImplementedError

    def executemany_count(self, sql: str, rows: Iterable[Params]) -> int:
        """Run an INSERT (e.g. :meth:`insert_ignore`) for each row; how many rows it really inserted."""
        return self.executemany(sql, rows).rowcount

    def fetch_all(self, statements: Sequence[tuple[str, Params]]) -> list[list[tuple[Any, ...]]]:
        """The rows of each of several reading statements, in order: on PostgreSQL in one pipeline
        (one round trip for all), on SQLite one after the other."""
        return [self.execute(sql, params).fetchall() for sql, params in statements]

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Statements in the block are sent without waiting for each answer (PostgreSQL's pipeline mode):
        one round trip for several writes. A no-op on SQLite, which has no round trips."""
        yield

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Plain INSERTs of many rows (no ON CONFLICT): the hot path's bulk writes.

        SQLite: ``executemany``. PostgreSQL: one INSERT of the columns as arrays (``unnest``), one round
        trip and no per-row statement (a unique key broken fails it whole).
        """
        if rows:
            self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(columns)})", rows)

    @property
    def row_order(self) -> str:
        """The column of a record table's insertion order: SQLite's ``rowid``, PostgreSQL's ``row_order`` identity."""
        raise NotImplementedError

    def json_elements(self, column: str, alias: str) -> str:
        """A FROM item giving the elements of the JSON text array ``column`` as ``<alias>.value``."""
        raise NotImplementedError

    # -- per engine ---------------------------------------------------------

    _begin_sql = "BEGIN"

    def _revive(self) -> None:
        """Before a statement outside a transaction: reconnect if the server closed the connection.

        A no-op on SQLite. On PostgreSQL a restart or a failover closes the
        connection; the transaction it was in was rolled back whole (and
        reported as DatabaseUnavailable), so the next one may start on a new
        connection. Raises DatabaseUnavailable while the server is still away.
        """

    def _execute(self, sql: str, params: Params) -> Result:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: list[Params]) -> Result:
        raise NotImplementedError

    def _raw(self, sql: str) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class SqliteEngine(Engine):
    """SQLite through :func:`hcp.db.open_db` (WAL, foreign keys, ``BEGIN IMMEDIATE``)."""

    dialect: Dialect = "sqlite"
    _begin_sql = "BEGIN IMMEDIATE"  # take the write lock at once: no deadlock upgrading a reader

    def __init__(self, db: sqlite_utils.Database) -> None:
        super().__init__()
        #: The sqlite-utils Database (migrations, ``hcp.db`` helpers) until the Store needs none.
        self.sqlite = db
        self._conn: sqlite3.Connection = db.conn

    @property
    def in_transaction(self) -> bool:
        return not self._closed and self._conn.in_transaction

    def _execute(self, sql: str, params: Params) -> Result:
        return Result(self._conn.execute(sql, () if params is None else params), "sqlite")

    def _executemany(self, sql: str, rows: list[Params]) -> Result:
        return Result(self._conn.executemany(sql, rows), "sqlite")

    def _raw(self, sql: str) -> None:
        self._conn.execute(sql)

    def _close(self) -> None:
        self._conn.close()

    # sqlite-only: the dialect helpers' SQLite forms.
    @property
    def row_order(self) -> str:
        return "rowid"

    def json_elements(self, column: str, alias: str) -> str:
        return f"json_each({column}) AS {alias}"

    def id_list(self, ids: Iterable[str]) -> tuple[str, Any]:
        return "SELECT value FROM json_each(?)", json_list(ids)

    def insert_ignore(self, table: str, columns: Sequence[str], values: str | None = None) -> str:
        return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({values or marks(columns)})"

    @property
    def no_limit(self) -> str:
        return "-1"

    def limit(self, count: int | None) -> int | None:
        return -1 if count is None else count

    def insert_id(self, sql: str, params: Params = None, column: str = "id") -> int:
        rowid = self.execute(sql, params).lastrowid
        assert rowid is not None
        return rowid

    def executemany_count(self, sql: str, rows: Iterable[Params]) -> int:
        # total_changes, not rowcount: what the layer counted, and right for a statement sqlite3 cannot count.
        before = self._conn.total_changes
        self.executemany(sql, rows)
        return self._conn.total_changes - before


def marks(columns: Sequence[str]) -> str:
    return ", ".join("?" * len(columns))


def is_url(database: str | Path) -> bool:
    """Whether ``database`` names a PostgreSQL server (a ``postgresql://`` URL) rather than an SQLite file."""
    return isinstance(database, str) and database.startswith(_URL_SCHEMES)


def database_location(database: str | Path) -> str | Path:
    """A ``postgresql://`` URL as it is, anything else as a Path (an SQLite file)."""
    return database if is_url(database) else Path(database)


def connect(database: str | Path, *, check_same_thread: bool = True, connect_timeout: int = 10) -> Engine:
    """An :class:`Engine` for a path (SQLite, through ``hcp.db.open_db``) or a ``postgresql://`` URL.

    A URL may name several hosts (``postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write``),
    tried in order as libpq does. ``connect_timeout`` (seconds, per host) applies unless the URL sets one.
    Errors leave as the collector's ``DatabaseError`` classes.
    """
    try:
        if is_url(database):
            from hcp.collector.store.engine_pg import connect_pg  # psycopg is loaded only for a server

            return connect_pg(str(database), connect_timeout)
        return SqliteEngine(open_db(database, check_same_thread=check_same_thread))
    except engine_errors() as err:
        raise translate_any(err) from err

"""The engine's errors translated into the collector's own at the storage layer's boundary.

Above the layer nobody imports the database driver: the service tells a
database that cannot work now (retry the batch) from one message that broke a
rule (a bug, that message alone) by the classes of :mod:`hcp.collector.exc`.
The message is the engine's own words ("database or disk is full", "disk I/O
error"), and the engine's error stays attached as ``__cause__``.

Both engines are translated here: :func:`translate` for sqlite3 and
:func:`translate_pg` for psycopg 3; :func:`database_errors` catches either.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hcp.collector.exc import DatabaseError, DatabaseFull, DatabaseUnavailable, MessageFailed

#: SQLite's primary result code for a full disk or a database at its size limit (SQLITE_FULL).
_SQLITE_FULL = 13
#: Errors that one message's statements cause (a broken key, a bad value, a misuse), not the database's state.
_MESSAGE_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.InterfaceError)

if TYPE_CHECKING:
    import psycopg


# sqlite-only: sqlite3's error classes and result codes; psycopg's twin is translate_pg below.
def translate(err: sqlite3.Error) -> DatabaseError:
    """The collector's error for an engine error (raise it ``from err``)."""
    text = str(err)
    if isinstance(err, _MESSAGE_ERRORS):
        return MessageFailed(text)
    code = getattr(err, "sqlite_errorcode", None)
    # An error made by hand (a test's injected fault) has no code: its words say what it is.
    if (code is not None and code & 0xFF == _SQLITE_FULL) or (code is None and "is full" in text):
        return DatabaseFull(text)
    return DatabaseUnavailable(text)


def translate_pg(err: psycopg.Error) -> DatabaseError:
    """The collector's error for a psycopg error (raise it ``from err``).

    ``DiskFull`` (53100) is :class:`DatabaseFull`. A lost or refused
    connection (``OperationalError``: AdminShutdown 57P01, CannotConnectNow
    57P03, a backend that died), a lost race the server resolved by failing
    us (SerializationFailure 40001, DeadlockDetected 40P01), a lock not had
    in time (LockNotAvailable 55P03) and anything else of the server's state
    are :class:`DatabaseUnavailable`: the transaction is gone, retry it.
    IntegrityError, DataError and ProgrammingError come from the statements
    of one message: :class:`MessageFailed`.
    """
    import psycopg  # loaded already: the error is its own

    text = _pg_words(err)
    if isinstance(err, psycopg.errors.DiskFull):
        return DatabaseFull(text)
    # a broken constraint, a bad value, a wrong statement (SQLSTATE classes 23, 22, 42 …)
    if isinstance(err, psycopg.IntegrityError | psycopg.DataError | psycopg.ProgrammingError):
        return MessageFailed(text)
    return DatabaseUnavailable(text)


def _pg_words(err: psycopg.Error) -> str:
    """The server's primary message (one line), or psycopg's own for a client-side error."""
    diag = getattr(err, "diag", None)
    primary = diag.message_primary if diag is not None else None
    text = primary or str(err) or type(err).__name__
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def engine_errors() -> tuple[type[Exception], ...]:
    """The engines' error classes, for ``except``: psycopg's only once something loaded it (nothing else raises them).

    So a collector on SQLite never pays psycopg's import.
    """
    pg = sys.modules.get("psycopg")
    return (sqlite3.Error, pg.Error) if pg is not None else (sqlite3.Error,)


def translate_any(err: Exception) -> DatabaseError:
    """:func:`translate` or :func:`translate_pg`, by the engine the error comes from."""
    return translate(err) if isinstance(err, sqlite3.Error) else translate_pg(err)  # type: ignore[arg-type]


@contextmanager
def database_errors() -> Iterator[None]:
    """Raise the engines' errors in the block as the collector's (:func:`translate_any`); others pass unchanged."""
    try:
        yield
    except engine_errors() as err:
        raise translate_any(err) from err

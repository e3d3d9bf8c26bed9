"""The engine's errors translated into the collector's own at the storage layer's boundary.

Above the layer nobody imports the database driver: the service tells a
database that cannot work now (retry the batch) from one message that broke a
rule (a bug, that message alone) by the classes of :mod:`hcp.collector.exc`.
The message is the engine's own words ("database or disk is full", "disk I/O
error"), and the engine's error stays attached as ``__cause__``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from hcp.collector.exc import DatabaseError, DatabaseFull, DatabaseUnavailable, MessageFailed

#: SQLite's primary result code for a full disk or a database at its size limit (SQLITE_FULL).
_SQLITE_FULL = 13
#: Errors that one message's statements cause (a broken key, a bad value, a misuse), not the database's state.
_MESSAGE_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.InterfaceError)


# sqlite-only: sqlite3's error classes and result codes; psycopg's twin maps its classes and SQLSTATEs
# (IntegrityError/DataError/ProgrammingError -> MessageFailed, 53100 disk_full -> DatabaseFull, the rest unavailable).
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


@contextmanager
def database_errors() -> Iterator[None]:
    """Raise the engine's errors in the block as the collector's (:func:`translate`); others pass unchanged."""
    try:
        yield
    except sqlite3.Error as err:
        raise translate(err) from err

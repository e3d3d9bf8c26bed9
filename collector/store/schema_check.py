"""The database's schema objects against what the migrations create: a planted trigger is tampering too.

A trigger on ``ratings`` can rewrite every new rating before it is sealed; a
redefined ``rating_outcomes`` view changes every count without touching a
record. Neither changes a row, so the hash chain alone cannot see them.
``hcp verify`` builds the schema the migrations create in a scratch database
and compares every table, index, view and trigger, by name and definition.
(PostgreSQL's list adds functions; the comparison is the same.)
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache

_WHITESPACE = re.compile(r"\s+")
# sqlite-only: sqlite_master (PostgreSQL: pg_catalog / information_schema)
_OBJECTS = ("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY type, name")


def schema_objects(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """(type, name) -> definition, whitespace collapsed, of every schema object but SQLite's own."""
    return {(kind, name): _WHITESPACE.sub(" ", sql or "").strip() for kind, name, sql in conn.execute(_OBJECTS)}


@cache
def expected_objects() -> dict[tuple[str, str], str]:
    """The schema objects the collector's migrations create, from a scratch in-memory database."""
    from hcp.collector.store.schema import MIGRATIONS
    from hcp.db import migrate, open_db

    db = open_db(":memory:")
    try:
        migrate(db, MIGRATIONS)
        return schema_objects(db.conn)
    finally:
        db.conn.close()


def schema_problems(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(where, what) for every schema object added, missing or defined otherwise than the migrations do."""
    expected, found = expected_objects(), schema_objects(conn)
    problems = []
    for (kind, name), sql in sorted(found.items()):
        if (kind, name) not in expected:
            problems.append((f"{kind} {name}", f"not created by the migrations (added outside the collector): {sql}"))
        elif expected[kind, name] != sql:
            problems.append((f"{kind} {name}", f"defined otherwise than the migrations create it: {sql}"))
    problems += [(f"{kind} {name}", "missing (dropped outside the collector)")
                 for kind, name in sorted(expected) if (kind, name) not in found]
    return problems

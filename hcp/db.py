"""Opening SQLite the way hcp needs it, and applying schema migrations.

Both the terminal's outbox and the collector store use this: WAL journal,
``synchronous=FULL`` (a commit that returned survives a power cut), a busy
timeout, and migrations as small functions applied each in a transaction
together with the row that records them (the sqlite-utils pattern).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


def open_db(path: Path | str, *, synchronous: str = "FULL", check_same_thread: bool = True,
            max_page_count: int | None = None) -> sqlite_utils.Database:
    """An sqlite-utils Database over ``path`` with WAL and the given sync level.

    ``path`` may be ``":memory:"`` for tests. ``max_page_count`` bounds the
    file's size (used to simulate a full disk).
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (db.atomic() or
    # explicit transactions), so nothing is left half-open behind our back.
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=check_same_thread, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    if max_page_count is not None:
        conn.execute(f"PRAGMA max_page_count={int(max_page_count)}")
    return sqlite_utils.Database(conn)


def migrate(db: sqlite_utils.Database, migrations: Sequence[Migration]) -> int:
    """Apply the migrations not yet recorded in ``_migrations``; return how many ran.

    Each migration runs in its own transaction with the row that records it,
    so a crash leaves the schema at a whole step.
    """
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL "
               "DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
    applied = 0
    for step in migrations:
        if step.__name__ in done:
            continue
        with transaction(db):
            step(db)
            db.execute("INSERT INTO _migrations (name) VALUES (?)", [step.__name__])
        applied += 1
    return applied


def run_script(db: sqlite_utils.Database, sql: str) -> None:
    """Execute ``sql``, statements separated by ";" at a line end, inside the caller's transaction.

    Not ``executescript``, which commits first and would break a migration's one transaction.
    """
    for statement in sql.split(";\n"):
        if statement.strip():
            db.execute(statement)


def make_append_only(db: sqlite_utils.Database, tables: Sequence[str]) -> None:
    """Triggers that abort any UPDATE or DELETE on ``tables``: their rows are records."""
    for table in tables:
        for event in ("UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} BEGIN "
                       f"SELECT RAISE(ABORT, '{table} is append-only: corrections are new records'); END")


class transaction:  # lower case: used like a keyword, ``with transaction(db):``
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._conn = db.conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                # COMMIT itself can fail (disk full, I/O error); leaving the
                # transaction open would make every later BEGIN fail too.
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


_NEEDS_ESCAPING = re.compile(r'["\\\x00-\x1f]')


def json_list(values: Iterable[str]) -> str:
    """A JSON list of strings (stored, or passed to ``json_each``): joined directly unless a value needs escaping.

    Ids never need it, by their protocol pattern; a reason may hold a quote or a backslash.
    """
    values = list(values)
    if _NEEDS_ESCAPING.search("".join(values)):  # not the joined list: its separators are quotes
        return json.dumps(values, ensure_ascii=False)
    return '["' + '","'.join(values) + '"]' if values else "[]"

"""Moving a collector's SQLite database to PostgreSQL with its hash chain: ``hcp migrate-store``.

Every row of every table is copied as it is, in one PostgreSQL transaction:
an interrupted copy leaves nothing behind and is simply run again; a copy
that completed is recognised (``store_meta``) and not made twice.

The chain stays valid because the rows keep their places. On SQLite a
record's place is its rowid, which the chain's blocks name by range
(``first_order`` … ``last_order``); PostgreSQL orders by identity columns
(``id``, or ``row_order``), so the rowid is copied into them (with
``OVERRIDING SYSTEM VALUE`` where the column is ``GENERATED ALWAYS``) and
each identity sequence is moved past the largest value copied. Two tables
have no rowid on SQLite (case records and unit claims, ``WITHOUT ROWID``):
their rows are numbered in the order the chain sealed them, and ``store_meta``
records up to where each was sealed on SQLite, so sealing on PostgreSQL
carries on after them (``chain._SEALED_UP_TO``). The source's chain is
verified and its head signed before anything is copied; the target is
verified after.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hcp.collector.exc import Refused
from hcp.collector.store.chain_rows import TABLES
from hcp.domain import now_cst

if TYPE_CHECKING:
    from hcp.collector.store.core import Store

#: store_meta key recording a completed copy (its value: the source's chain head and row counts).
COPIED_KEY = "migrated_from_sqlite"
#: store_meta key prefix: up to which row_order a table without rowid on SQLite was sealed there.
SEALED_KEY = "chain_sealed_order:"
_CHUNK = 2000
#: Tables not copied: the engines' own migration records (the target has its own).
_SKIP = {"_migrations", "schema_migrations", "sqlite_sequence", "sqlite_stat1"}


@dataclass
class CopyReport:
    """What a copy did: rows per table, and whether it had been done before."""

    rows: dict[str, int]
    already: bool = False

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def copy_store(source: Store, target: Store, progress: Callable[[str, int], None] = lambda _t, _n: None
               ) -> CopyReport:
    """Copy every row of the SQLite ``source`` into the empty PostgreSQL ``target``, chain included.

    Raises Refused when the source does not verify, or the target holds data of another collector.
    """
    if source.dialect != "sqlite" or target.dialect != "postgresql":
        raise Refused("migrate-store copies an SQLite database into a PostgreSQL one")
    source.sign_head(now_cst())  # every sealed entry under a signed head, so the target verifies whole
    problems = source.verify_chain()
    if problems:
        raise Refused(f"the source does not verify ({len(problems)} problem(s), first: {problems[0]}); "
                      "run 'hcp verify' on it and resolve them first")
    src, dst = source._conn, target._conn
    head = source.heads()[-1] if source.heads() else None
    marker = json.dumps({"head_seq": head.seq if head else 0, "head_link": head.link if head else ""})
    done = dst.execute("SELECT value FROM store_meta WHERE key = ?", (COPIED_KEY,)).fetchone()
    if done is not None:
        if done[0] == marker:
            return CopyReport(_counts(dst, _tables(src)), already=True)
        raise Refused("the target already holds a copy of another state of the chain (or another collector); "
                      "copy into an empty database")
    if dst.execute("SELECT count(*) FROM ratings").fetchone()[0] or \
            dst.execute("SELECT count(*) FROM chain_blocks").fetchone()[0]:
        raise Refused("the target database already holds ratings or a chain: copy into an empty database")
    rows: dict[str, int] = {}
    with dst.transaction():
        # Nothing else may write records while the chain is laid down (the collectors' advisory lock).
        from hcp.collector.store.pg_schema import RECORD_WRITE_LOCK

        dst.execute("SELECT pg_advisory_xact_lock(?)", (RECORD_WRITE_LOCK,))
        dst.execute("DELETE FROM store_meta")  # the target's fresh policy row: the source's replaces it
        for table in _tables(src):
            rows[table] = _copy_table(src, dst, table)
            progress(table, rows[table])
        dst.execute("INSERT INTO store_meta (key, value) VALUES (?, ?)", (COPIED_KEY, marker))
        _move_sequences(dst)
    return CopyReport(rows)


def _tables(src: Any) -> list[str]:
    """The source's tables, parents before children (the order the migrations made them)."""
    # sqlite-only: sqlite_master, the source's catalog
    names = [name for (name,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    return [name for name in names if name not in _SKIP and not name.startswith("sqlite_")]


def _counts(dst: Any, tables: list[str]) -> dict[str, int]:
    return {table: dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}


def _copy_table(src: Any, dst: Any, table: str) -> int:
    # sqlite-only: PRAGMA table_info and rowid, the source's columns and order
    columns = [row[1] for row in src.execute(f"PRAGMA table_info({table})")]
    target_columns = {name for (name,) in dst.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ?",
        (table,))}
    missing = [c for c in columns if c not in target_columns]
    if missing:
        raise Refused(f"{table}: column(s) {', '.join(missing)} have no place on PostgreSQL")
    order_column = "row_order" if "row_order" in target_columns and "row_order" not in columns else None
    copied = list(columns) + ([order_column] if order_column else [])
    overriding = " OVERRIDING SYSTEM VALUE" if _always_identity(dst, table) else ""
    sql = (f"INSERT INTO {table} ({', '.join(copied)}){overriding} VALUES ({', '.join('?' * len(copied))})")
    count = 0
    for chunk in _source_rows(src, table, columns, order_column is not None, dst):
        dst.executemany(sql, chunk)
        count += len(chunk)
    return count


def _source_rows(src: Any, table: str, columns: list[str], with_order: bool, dst: Any) -> Iterator[list[tuple]]:
    """The rows of ``table`` in chunks, each with its place (rowid) last when the target numbers them."""
    quoted = ", ".join(f'"{c}"' for c in columns)
    has_rowid = _has_rowid(src, table)
    if with_order and not has_rowid:
        yield from _by_chain_order(src, dst, table, quoted)
        return
    select = f"SELECT {quoted}{', rowid' if with_order else ''} FROM {table}"
    cursor = src.execute(select + (" ORDER BY rowid" if has_rowid else ""))
    while chunk := cursor.fetchmany(_CHUNK):
        yield [tuple(row) for row in chunk]


def _by_chain_order(src: Any, dst: Any, table: str, quoted: str) -> Iterator[list[tuple]]:
    """A WITHOUT ROWID table's rows numbered in the order the chain sealed them; records how far."""
    spec = next((s for s in TABLES if s.table == table), None)
    if spec is None:
        cursor = src.execute(f"SELECT {quoted} FROM {table}")
        number = 0
        while chunk := cursor.fetchmany(_CHUNK):
            rows = []
            for row in chunk:
                number += 1
                rows.append((*row, number))
            yield rows
        return
    sealed: list[str] = []
    for (keys,) in src.execute("SELECT row_keys FROM chain_blocks WHERE tbl = ? ORDER BY seq", (table,)):
        sealed += [str(k) for k in json.loads(keys)]
    place = {name: n for n, name in enumerate(sealed, 1)}
    rows = src.execute(f"SELECT {quoted} FROM {table}").fetchall()
    at = spec.columns.index(spec.key)
    extra = len(place)
    numbered = []
    for row in rows:
        number = place.get(str(row[at]))
        if number is None:  # unsealed (cannot be: the source verified); after the sealed ones
            extra += 1
            number = extra
        numbered.append((*row, number))
    numbered.sort(key=lambda row: row[-1])
    for first in range(0, len(numbered), _CHUNK):
        yield numbered[first:first + _CHUNK]
    dst.execute("INSERT INTO store_meta (key, value) VALUES (?, ?)", (SEALED_KEY + table, str(len(place))))


def _has_rowid(src: Any, table: str) -> bool:
    # sqlite-only: sqlite_master's text of the table
    sql = src.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
    return "WITHOUT ROWID" not in sql.upper()


def _always_identity(dst: Any, table: str) -> bool:
    return bool(dst.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND "
                            "table_name = ? AND identity_generation = 'ALWAYS'", (table,)).fetchone()[0])


def _move_sequences(dst: Any) -> None:
    """Each identity sequence past the largest value copied, so the next row is numbered after them."""
    for table, column in dst.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND "
            "is_identity = 'YES'").fetchall():
        dst.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), greatest(coalesce(max({column}), 0), 1), "
                    f"max({column}) IS NOT NULL) FROM {table}", (table, column))

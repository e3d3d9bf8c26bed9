"""Tamper evidence: an append-only hash chain over the records, and signed heads.

Every committed transaction ends by *sealing*: the record rows it inserted
(found by rowid range, or queued in ``chain_queue`` for tables without a
rowid) become one block per table in ``chain_blocks``, holding every row's name and the SHA-256 of its canonical
bytes (``hcp.collector.store.chain_rows``: built in Python, the same on every
engine), and a link, the SHA-256 of the previous link, the block's place and
its content. Editing a row changes its hash; deleting or inserting one leaves
a name without a row or a row without a name; on SQLite, reordering breaks the
order the blocks recorded. Rewriting the chain to match is what the *signed
heads* catch: the collector signs the last link with an Ed25519 key derived
from its secret key, stores the head, appends it to a heads file and publishes
it retained, so a copy lives outside the database; only the public key is
needed to check them. ``verify`` also fails when chain entries exist that no
signed head covers, and when the schema's objects differ from what the
migrations create (``hcp.collector.store.schema_check``).

Older chains still verify: per-row entries in ``chain`` (before m006), and
version-1 blocks (m006), whose rows were hashed as SQLite's JSON text and
sealed by rowid range. Version-2 blocks continue their numbering and links.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hcp.collector.store.chain_rows import TABLES, VERSION, Chained, row_digest, row_digests
from hcp.collector.store.chain_rows import block_link as block_link_v2
from hcp.db import json_list

#: The tables the chain covers with the column that names a row (``chain_rows.TABLES``), in sealing order.
CHAINED = tuple((spec.table, spec.key) for spec in TABLES)
#: The tables version-1 blocks and per-row entries covered.
CHAINED_V1 = (("ratings", "rating_id"), ("rating_decisions", "id"), ("rating_links", "rating_id"),
              ("followups", "id"), ("followup_events", "id"),
              ("followup_contacts", "followup_id"), ("appeals", "id"), ("appeal_decisions", "id"),
              ("exclusions", "id"), ("malicious_raters", "id"), ("rating_texts", "rating_id"))
GENESIS = "0" * 64


@dataclass(frozen=True)
class Head:
    """A signed chain head: the chain up to ``seq`` ends in ``link``."""

    seq: int
    link: str
    signed_at: str
    public_key: str
    signature: str

    def payload(self) -> bytes:
        return f"hcp-chain-head\n{self.seq}\n{self.link}\n{self.signed_at}".encode()


@dataclass(frozen=True)
class Problem:
    """One place where the records and the chain disagree."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def content_sql(conn: sqlite3.Connection, table: str) -> str:
    """An SQL expression giving a row's canonical content: the table, then every column in order.

    Each value is written as a type letter, its length and its text, so no two
    different rows share an encoding (a value cannot imitate a separator), and
    nothing depends on the Python version. SQLite builds the text while it reads
    the row, so sealing costs one SHA-256 per row in Python: this runs for every
    record on the collector's hot path. Sealing and verifying use this same
    expression, so they agree on every value, numbers included.
    """
    if table not in _CONTENT_SQL:
        # sqlite-only: PRAGMA table_info
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        parts = [f"'{table}'", *(_column_sql(f'"{column}"') for column in columns)]
        _CONTENT_SQL[table] = " || ".join(parts)
    return _CONTENT_SQL[table]


def _column_sql(column: str) -> str:
    text = f"CAST({column} AS TEXT)"
    # sqlite-only: typeof(), CAST AS TEXT of any value, hex() of a blob
    return (f"(CASE typeof({column}) WHEN 'null' THEN '|n' "
            f"WHEN 'text' THEN '|s' || length({column}) || ':' || {column} "
            f"WHEN 'integer' THEN '|i' || length({text}) || ':' || {text} "
            f"WHEN 'real' THEN '|r' || length({text}) || ':' || {text} "
            f"ELSE '|x' || length({column}) || ':' || lower(hex({column})) END)")


def content_hash(content: str) -> str:
    """The SHA-256 of a row's canonical content (from :func:`content_sql`)."""
    # surrogatepass: a tampered row may hold bytes that are not UTF-8 (see verify); valid text is unchanged.
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def next_link(previous: str, table: str, key: str, digest: str) -> str:
    return hashlib.sha256(f"{previous}|{table}|{key}|{digest}".encode()).hexdigest()


def seal(conn: Any, tables: Sequence[Chained] = TABLES) -> int:
    """Seal every record row not yet chained, one block per table; returns how many rows.

    Call inside the writing transaction, as its last step: the transaction
    holds the write lock (on PostgreSQL, the chain's advisory lock), so blocks
    follow in commit order. A table with an insertion order (SQLite's rowid)
    is sealed by range, from where its last block ended; the others (without
    rowid) through ``chain_queue``, which their insert trigger fills. Each
    block holds its rows' names and digests in insertion order and links to
    the block before it. ``tables``: a migration seals the tables that exist at its step.
    """
    seq, link = _last(conn)
    blocks, sealed = [], 0
    queued = None
    pg = dialect(conn) == "postgresql"
    by_order = [spec for spec in tables if pg or spec.rowid]
    fetched = dict(zip(by_order, _new_by_order(conn, by_order, pg), strict=True))
    for spec in tables:
        if spec in fetched:
            rows, first, last = fetched[spec]
        else:
            if queued is None:
                queued = {table for (table,) in conn.execute("SELECT DISTINCT tbl FROM chain_queue")}
            rows, first, last = [], 0, 0
            if spec.table in queued:
                rows = conn.execute(_queue_sql(spec)).fetchall()
        if not rows:
            continue
        at = spec.key_index
        keys = json_list([str(row[at]) for row in rows])
        hashes = row_digests(rows)
        seq += 1
        link = block_link_v2(link, seq, spec.table, first, last, keys, hashes)
        blocks.append((seq, spec.table, first, last, keys, hashes, link, VERSION))
        sealed += len(rows)
    if blocks:
        conn.executemany("INSERT INTO chain_blocks (seq, tbl, first_order, last_order, row_keys, row_hashes, link, "
                         "version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", blocks)
    if queued:
        conn.execute("DELETE FROM chain_queue")
    return sealed


def dialect(conn: Any) -> str:
    """The engine of ``conn``: an Engine says; a bare sqlite3 connection (a migration's) is SQLite."""
    return getattr(conn, "dialect", "sqlite")


def order_column(spec: Chained, pg: bool) -> str:
    """The column giving a table's insertion order: SQLite's rowid; on PostgreSQL an identity column.

    On PostgreSQL every record writer holds the record-write advisory lock
    (``Store.batch``), so identity order is commit order and a range from
    where the last block ended finds exactly the new rows.
    """
    return spec.pg_order if pg else "rowid"


def _new_by_order(conn: Any, specs: list[Chained], pg: bool) -> list[tuple[list[tuple], int, int]]:
    """For each table, its rows after its last sealed one, with their first and last order.

    Two rounds of one query per table, each round sent together (one round trip on PostgreSQL): where
    each table's sealing stopped, then the rows after it. Not one query with a subquery: PostgreSQL
    cannot know the subquery's value when it plans, guesses a third of the table, and scans it all.
    A bare sqlite3 connection (a migration's) runs them one by one.
    """
    def run(statements: list[tuple[str, Any]]) -> list[list[tuple]]:
        if hasattr(conn, "fetch_all"):
            return conn.fetch_all(statements)
        return [conn.execute(sql, params).fetchall() for sql, params in statements]

    done = run([(_SEALED_UP_TO, {"tbl": spec.table, "mark": f"chain_sealed_order:{spec.table}"}) for spec in specs])
    results = run([(_range_sql(spec, order_column(spec, pg)), (rows[0][0],)) for spec, rows in zip(specs, done,
                                                                                                  strict=True)])
    return [([row[1:] for row in rows], rows[0][0], rows[-1][0]) if rows else ([], 0, 0) for rows in results]


#: Where the last block of a table ended; on PostgreSQL also where a copy from SQLite left a table that
#: was sealed there without a rowid (``store_meta``, written by hcp.collector.store.copy).
_SEALED_UP_TO = ("SELECT coalesce(max(done), 0) FROM (SELECT max(last_order) AS done FROM chain_blocks "
                 "WHERE tbl = :tbl UNION ALL SELECT max(row_order) FROM chain WHERE tbl = :tbl "
                 "UNION ALL SELECT CAST(value AS bigint) FROM store_meta WHERE key = :mark) AS sealed")


def _range_sql(spec: Chained, order: str) -> str:
    if (spec.table, order) not in _SEAL_SQL:
        _SEAL_SQL[spec.table, order] = (f"SELECT {order}, {spec.select()} FROM {spec.table} WHERE {order} > ? "
                                        f"ORDER BY {order}")
    return _SEAL_SQL[spec.table, order]


def _queue_sql(spec: Chained) -> str:
    if (spec.table, "queue") not in _SEAL_SQL:
        _SEAL_SQL[spec.table, "queue"] = (f"SELECT {spec.select('t')} FROM chain_queue q JOIN {spec.table} t "
                                          f"ON t.\"{spec.key}\" = q.row_key WHERE q.tbl = '{spec.table}' "
                                          "ORDER BY q.seq")
    return _SEAL_SQL[spec.table, "queue"]


#: (table, order column or "queue") -> the query reading its rows to seal.
_SEAL_SQL: dict[tuple[str, str], str] = {}


def _last(conn: Any) -> tuple[int, str]:
    """The chain's last (seq, link): its newest block, else its newest per-row entry, else the genesis."""
    for table in ("chain_blocks", "chain"):
        last = conn.execute(f"SELECT seq, link FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
        if last:
            return last
    return 0, GENESIS


def block_link(previous: str, table: str, first: int, last: int, keys: str, hashes: bytes) -> str:
    """The link of a block: the SHA-256 of the previous link and everything the block holds."""
    return hashlib.sha256(f"{previous}|{table}|{first}|{last}|{keys}|".encode("utf-8", "surrogatepass")
                          + hashes).hexdigest()


def row_json_sql(conn: sqlite3.Connection, table: str, *, every_column: bool = False) -> str:
    """An SQL expression giving a row's canonical content for a block: a JSON array of the table and its values.

    SQLite builds it in C while it reads the row, so sealing costs one SHA-256
    per row in Python. Text and integer columns go in as they are; a column
    declared otherwise (a blob, a real, no type) is tagged with its storage
    class, ``["blob", hex]`` or ``["real", 17 digits]``, because JSON has no
    blob and SQLite writes reals in JSON with 15 digits. ``every_column`` tags
    every column so: :func:`verify` falls back to it when an intruder left a
    blob where JSON cannot hold one; untampered rows give the same text.
    """
    cache = _ROW_JSON_ALL if every_column else _ROW_JSON
    if table not in cache:
        parts = [f"'{table}'"]
        # sqlite-only: PRAGMA table_info
        for _cid, name, declared, *_ in conn.execute(f"PRAGMA table_info({table})"):
            column = f'"{name}"'
            plain = declared.upper() in ("TEXT", "INTEGER") and not every_column
            parts.append(column if plain else
                         # sqlite-only: typeof(), json_array(), hex(), printf('%!.17g')
                         f"CASE typeof({column}) WHEN 'blob' THEN json_array('blob', hex({column})) "
                         f"WHEN 'real' THEN json_array('real', printf('%!.17g', {column})) ELSE {column} END")
        cache[table] = f"json_array({', '.join(parts)})"
    return cache[table]


#: table -> its content expressions; the schema of a table does not change under a running collector.
_CONTENT_SQL: dict[str, str] = {}
_ROW_JSON: dict[str, str] = {}
_ROW_JSON_ALL: dict[str, str] = {}


def signing_key(secret: bytes) -> Ed25519PrivateKey:
    """The collector's head-signing key, derived from its secret key (so one file holds both)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"hcp-chain-sign\0" + secret).digest())


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign_head(conn: Any, secret: bytes, now: datetime) -> Head | None:
    """Sign the current chain head and store it; None when the chain is empty or already signed there."""
    last = _last(conn)
    if last[0] == 0:
        return None
    signed = conn.execute("SELECT max(seq) FROM chain_heads").fetchone()[0]
    if signed == last[0]:
        return None
    key = signing_key(secret)
    unsigned = Head(last[0], last[1], now.astimezone(UTC).isoformat(timespec="seconds"), public_hex(key), "")
    head = Head(**{**unsigned.__dict__, "signature": key.sign(unsigned.payload()).hex()})
    conn.execute("INSERT INTO chain_heads (seq, link, signed_at, public_key, signature) VALUES (?, ?, ?, ?, ?)",
                 (head.seq, head.link, head.signed_at, head.public_key, head.signature))
    return head


def head_json(head: Head) -> str:
    """A head as one JSON line: the form of the heads file, ``hcp chain heads`` and the retained message."""
    return json.dumps(head.__dict__, sort_keys=True)


def append_head(path: Path, head: Head) -> None:
    """Append a head to the heads file, flushed to disk: its copy outside the database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(head_json(head) + "\n")
        out.flush()
        os.fsync(out.fileno())


def read_heads(path: Path) -> list[Head]:
    """The heads of a heads file (JSON lines). Raises OSError, or ValueError naming the line that is not a head."""
    found = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            found.append(Head(**json.loads(line)))
        except (ValueError, TypeError) as err:
            raise ValueError(f"line {number} is not a signed head ({err})") from None
    return found


def heads(conn: Any) -> list[Head]:
    """Every stored signed head, oldest first."""
    return [Head(*row) for row in conn.execute(
        "SELECT seq, link, signed_at, public_key, signature FROM chain_heads ORDER BY id")]


def verify(conn: Any, *, trusted: list[Head] = (), public_key: str | None = None) -> list[Problem]:
    """Every disagreement between the schema, the records, the chain and the heads (stored and ``trusted``).

    ``conn``: the store's Engine (or a bare sqlite3 connection).
    """
    if dialect(conn) == "postgresql":
        from hcp.collector.store.pg_schema_check import schema_problems as pg_schema_problems

        return _verify(conn, pg_schema_problems(conn), list(trusted), public_key)
    from hcp.collector.store.schema_check import schema_problems

    raw = conn.sqlite.conn if hasattr(conn, "sqlite") else conn
    # sqlite-only: conn.text_factory (sqlite3's decoding of text)
    factory = raw.text_factory
    # An intruder may leave text that is not UTF-8; it must be reported, not crash the check.
    raw.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
    try:
        return _verify(raw, schema_problems(raw), list(trusted), public_key)
    finally:
        raw.text_factory = factory


def _verify(conn: Any, schema: list[tuple[str, str]], trusted: list[Head], public_key: str | None) -> list[Problem]:
    problems = [Problem(where, what) for where, what in schema]
    problems += _check_links(conn)
    for spec in TABLES:
        problems += _check_table(conn, spec)
    problems += _check_devices(conn)
    problems += _check_heads(conn, heads(conn), trusted, public_key)
    return problems


def _check_links(conn: sqlite3.Connection) -> list[Problem]:
    """Walk the per-row entries, then the blocks, recomputing every link from the genesis."""
    problems: list[Problem] = []
    link, expected_seq = GENESIS, 1

    def follow(seq: int, computed: str, stored: str, what: str) -> None:
        nonlocal link, expected_seq
        if seq != expected_seq:
            problems.append(Problem(f"chain entry {expected_seq}", f"missing (the next entry is {seq})"))
        link = computed
        if link != stored:
            problems.append(Problem(f"chain entry {seq}", f"link does not follow from the entries before it ({what})"))
            link = stored  # report each break once, then go on from the stored link
        expected_seq = seq + 1

    for seq, table, key, digest, stored in conn.execute(
            "SELECT seq, tbl, row_key, row_hash, link FROM chain ORDER BY seq").fetchall():
        follow(seq, next_link(link, table, key, digest), stored, f"{table} {key}")
    for seq, table, first, last, keys, hashes, stored, version in conn.execute(
            "SELECT seq, tbl, first_order, last_order, row_keys, row_hashes, link, version FROM chain_blocks "
            "ORDER BY seq").fetchall():
        if version == VERSION:
            computed = block_link_v2(link, seq, table, first, last, keys, hashes if isinstance(hashes, bytes) else b"")
        else:
            computed = block_link(link, table, first, last, keys, hashes)
        follow(seq, computed, stored, f"block of {table}")
    return problems


def _sealed_rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[int, str, bytes | str, int]]:
    """(seq, row name, digest, version) for every row the chain sealed in ``table``, in sealing order.

    Version 0 is a per-row entry of ``chain``, 1 and 2 a row of a block.
    """
    for seq, name, digest in conn.execute("SELECT seq, row_key, row_hash FROM chain WHERE tbl = ? ORDER BY seq",
                                          (table,)):
        yield seq, name, digest, 0
    for seq, keys, hashes, version in conn.execute("SELECT seq, row_keys, row_hashes, version FROM chain_blocks "
                                                   "WHERE tbl = ? ORDER BY seq", (table,)):
        try:
            names = json.loads(keys)
        except ValueError:
            names = []
        if not isinstance(names, list) or not isinstance(hashes, bytes) or len(hashes) != 32 * len(names):
            yield seq, f"(block {seq})", b"", version  # a damaged block: its link check reports it too
            continue
        for i, name in enumerate(names):
            yield seq, str(name), hashes[32 * i:32 * i + 32], version


def _v1_digests(conn: sqlite3.Connection, table: str, key: str) -> dict[str, bytes]:
    """row name -> its version-1 block digest (SQLite's JSON text of the row) for every row now in ``table``."""
    rows: dict[str, bytes] = {}
    for every_column in (False, True):
        # sqlite-only: SQLite's JSON text of a row (json_array, via row_json_sql)
        try:
            for name, content in conn.execute(
                    f'SELECT "{key}", {row_json_sql(conn, table, every_column=every_column)} FROM {table}'):
                rows[str(name)] = hashlib.sha256(content.encode("utf-8", "surrogatepass")).digest()
            return rows
        except sqlite3.OperationalError:  # sqlite-only: json_array refuses a blob
            rows.clear()  # a blob where JSON cannot hold one: tampered; tag every column and look again
    raise AssertionError("unreachable: every column tagged always renders")


def _current_rows(conn: Any, spec: Chained) -> dict[str, tuple[int | None, bytes]]:
    """row name -> (its insertion order, else None; its version-2 digest) for every row now in the table."""
    pg = dialect(conn) == "postgresql"
    order = order_column(spec, pg) if pg or spec.rowid else "NULL"
    at = spec.key_index + 1
    return {str(row[at]): (row[0], row_digest(row[1:]))
            for row in conn.execute(f"SELECT {order}, {spec.select()} FROM {spec.table}")}


def _check_table(conn: sqlite3.Connection, spec: Chained) -> list[Problem]:
    table, key = spec.table, spec.key
    rows = _current_rows(conn, spec)
    sealed = list(_sealed_rows(conn, table))
    versions = {entry[3] for entry in sealed}
    v1: dict[str, bytes] = {}
    legacy: dict[str, str] = {}
    if dialect(conn) == "postgresql" and versions & {0, 1}:
        # A chain begun on SQLite and moved here (hcp migrate-store): its older entries, in Python.
        at = spec.key_index
        for row in conn.execute(f"SELECT {spec.select()} FROM {spec.table}"):
            v1[str(row[at])] = legacy_v1_digest(row)
            legacy[str(row[at])] = legacy_v0_hash(row)
    else:
        v1 = _v1_digests(conn, table, key) if 1 in versions else {}
        if 0 in versions:
            legacy = {str(name): content_hash(content) for name, content in conn.execute(
                f'SELECT "{key}", {content_sql(conn, table)} FROM {table}')}
    problems, last_rowid, last_key = [], 0, None
    for seq, name, digest, version in sealed:
        found = rows.pop(name, None)
        if found is None:
            problems.append(Problem(f"{table} {name}", f"deleted (chain entry {seq})"))
            continue
        current = found[1] if version == VERSION else v1.get(name) if version == 1 else legacy.get(name)
        if current != digest:
            problems.append(Problem(f"{table} {name}", f"edited since it was recorded (chain entry {seq})"))
        if found[0] is not None and found[0] < last_rowid:
            problems.append(Problem(f"{table} {name}", f"reordered: now stored before {last_key} "
                                                       f"(chain entry {seq})"))
        last_rowid, last_key = found[0] or 0, name
    problems += [Problem(f"{table} {name}", "inserted outside the collector (" + (f"row {rowid}, " if rowid else "")
                         + "not in the chain)") for name, (rowid, _digest) in rows.items()]
    return problems


def legacy_v1_digest(row: tuple) -> bytes:
    """A version-1 block digest in Python: SQLite's ``json_array`` text of the row (:func:`row_json_sql`).

    ``row``: the table's name, then its values in column order. Text and
    integers as JSON; a blob tagged ``["blob", HEX]`` and a real ``["real",
    17 digits]``, as SQLite wrote them; JSON strings escaped as SQLite's
    ``json_array`` escapes them (quote, backslash, control characters), which
    is what Python's ``json`` does with ``ensure_ascii=False``.
    """
    values = [["blob", v.hex().upper()] if isinstance(v, bytes) else ["real", _g17(v)] if isinstance(v, float)
              else v for v in row]
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def legacy_v0_hash(row: tuple) -> str:
    """A per-row entry's hash (before m006) in Python: :func:`content_sql`'s text of the row."""
    parts = [str(row[0])]
    for value in row[1:]:
        if value is None:
            parts.append("|n")
        elif isinstance(value, str):
            parts.append(f"|s{len(value)}:{value}")
        elif isinstance(value, bytes):
            parts.append(f"|x{len(value)}:{value.hex()}")
        elif isinstance(value, float):
            text = _g15(value)
            parts.append(f"|r{len(text)}:{text}")
        else:
            parts.append(f"|i{len(str(value))}:{value}")
    return content_hash("".join(parts))


def _g17(value: float) -> str:
    return f"{value:.17g}"


def _g15(value: float) -> str:
    """SQLite's text of a real: 15 significant digits, always with a decimal point."""
    text = f"{value:.15g}"
    return text if any(c in text for c in ".eni") else text + ".0"


def _check_devices(conn: sqlite3.Connection) -> list[Problem]:
    """The current registrations (``devices``) must be what the chained registration events add up to."""
    state: dict[str, tuple[str, str, str]] = {}
    for device_id, action, hall_id, window_id, at in conn.execute(
            "SELECT device_id, action, hall_id, window_id, at FROM device_events ORDER BY id"):
        if action == "remove":
            state.pop(device_id, None)
        else:
            state[device_id] = (hall_id, window_id, state[device_id][2] if device_id in state else at)
    problems = []
    for device_id, hall_id, window_id, registered_at in conn.execute(
            "SELECT device_id, hall_id, window_id, registered_at FROM devices"):
        recorded = state.pop(device_id, None)
        if recorded is None:
            problems.append(Problem(f"devices {device_id}", "registered outside the collector (no registration "
                                                            "event)"))
        elif recorded != (hall_id, window_id, registered_at):
            problems.append(Problem(f"devices {device_id}", f"differs from its registration events (recorded "
                                                            f"{recorded[0]}/{recorded[1]}, now {hall_id}/{window_id})"))
    problems += [Problem(f"devices {device_id}", "removed outside the collector (no remove event)")
                 for device_id in state]
    return problems


def _check_heads(conn: sqlite3.Connection, stored: list[Head], trusted: list[Head],
                 public_key: str | None) -> list[Problem]:
    problems = []
    links = dict(conn.execute("SELECT seq, link FROM chain UNION ALL SELECT seq, link FROM chain_blocks"))
    covered = 0
    kept = set(stored)
    for head in dict.fromkeys([*stored, *trusted]):  # a head both stored and in the heads file is checked once
        where = f"signed head at chain entry {head.seq} ({head.signed_at})"
        if public_key and head.public_key != public_key:
            problems.append(Problem(where, "signed by another key than the collector's"))
        elif not _signature_ok(head):
            problems.append(Problem(where, "signature does not match"))
        elif head.seq not in links:
            problems.append(Problem(where, "the chain no longer reaches this entry (truncated)"))
        elif links[head.seq] != head.link:
            problems.append(Problem(where, "the chain was rewritten: its link differs from the signed one"))
        else:
            covered = max(covered, head.seq)
            if head not in kept:
                problems.append(Problem(where, "in the heads file but no longer in the database (deleted)"))
    last = max(links, default=0)
    if last > covered:
        problems.append(Problem(f"chain entries {covered + 1}-{last}", "covered by no signed head (the heads were "
                                "deleted, or the collector stopped without signing)"))
    return problems


def _signature_ok(head: Head) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(head.public_key)).verify(
            bytes.fromhex(head.signature), head.payload())
    except (InvalidSignature, ValueError):
        return False
    return True

"""Tamper evidence: an append-only hash chain over the records, and signed heads.

Every committed transaction ends by *sealing*: each table's record rows not
yet chained become one block in ``chain_blocks``, holding every row's name and
the SHA-256 of its content, and a link, the SHA-256 of the previous link and
this block. Editing a row changes its hash; deleting or inserting one leaves a
name without a row or a row without a name; reordering breaks the order the
blocks recorded. (Databases from before migration m006 also hold per-row
entries in ``chain``; they are verified as they are, and the blocks continue
their numbering and links.) Rewriting the chain
to match is what the *signed heads* catch: the collector signs the last link
with an Ed25519 key derived from its secret key, and the heads are exported
for safekeeping elsewhere, where only the public key is needed to check them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hcp.db import json_list

#: The chained tables with the column that names a row; sealed in this order.
CHAINED = (("ratings", "rating_id"), ("rating_decisions", "id"), ("rating_links", "rating_id"),
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
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        parts = [f"'{table}'", *(_column_sql(f'"{column}"') for column in columns)]
        _CONTENT_SQL[table] = " || ".join(parts)
    return _CONTENT_SQL[table]


def _column_sql(column: str) -> str:
    text = f"CAST({column} AS TEXT)"
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


def seal(conn: sqlite3.Connection) -> int:
    """Seal every record row not yet chained, one block per table; returns how many rows.

    Call inside the writing transaction. Each block holds its rows' names and
    digests in rowid order and links to the block before it.
    """
    seq, link = _last(conn)
    blocks, sealed = [], 0
    sha256 = hashlib.sha256
    for table, key in CHAINED:
        done = conn.execute(_SEALED_UP_TO, (table,)).fetchone()[0]
        # The content as its UTF-8 bytes straight from SQLite: what verify hashes, without a str in between.
        rows = conn.execute(f'SELECT rowid, "{key}", CAST({row_json_sql(conn, table)} AS BLOB) FROM {table} '
                            "WHERE rowid > ? ORDER BY rowid", (done,)).fetchall()
        if not rows:
            continue
        keys = json_list([str(name) for _rowid, name, _content in rows])
        hashes = b"".join([sha256(content).digest() for *_, content in rows])
        seq += 1
        first, last = rows[0][0], rows[-1][0]
        link = block_link(link, table, first, last, keys, hashes)
        blocks.append((seq, table, first, last, keys, hashes, link))
        sealed += len(rows)
    conn.executemany("INSERT INTO chain_blocks (seq, tbl, first_order, last_order, row_keys, row_hashes, link) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", blocks)
    return sealed


_SEALED_UP_TO = ("SELECT max(coalesce((SELECT max(last_order) FROM chain_blocks WHERE tbl = ?1), 0), "
                 "coalesce((SELECT max(row_order) FROM chain WHERE tbl = ?1), 0))")


def _last(conn: sqlite3.Connection) -> tuple[int, str]:
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
        for _cid, name, declared, *_ in conn.execute(f"PRAGMA table_info({table})"):
            column = f'"{name}"'
            plain = declared.upper() in ("TEXT", "INTEGER") and not every_column
            parts.append(column if plain else
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


def sign_head(conn: sqlite3.Connection, secret: bytes, now: datetime) -> Head | None:
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


def heads(conn: sqlite3.Connection) -> list[Head]:
    """Every stored signed head, oldest first."""
    return [Head(*row) for row in conn.execute(
        "SELECT seq, link, signed_at, public_key, signature FROM chain_heads ORDER BY id")]


def verify(conn: sqlite3.Connection, *, trusted: list[Head] = (), public_key: str | None = None) -> list[Problem]:
    """Every disagreement between the records, the chain and the heads (stored and ``trusted``)."""
    factory = conn.text_factory
    # An intruder may leave text that is not UTF-8; it must be reported, not crash the check.
    conn.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    try:
        problems = _check_links(conn)
        for table, key in CHAINED:
            problems += _check_table(conn, table, key)
        problems += _check_heads(conn, [*heads(conn), *trusted], public_key)
    finally:
        conn.text_factory = factory
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
    for seq, table, first, last, keys, hashes, stored in conn.execute(
            "SELECT seq, tbl, first_order, last_order, row_keys, row_hashes, link FROM chain_blocks ORDER BY seq"):
        follow(seq, block_link(link, table, first, last, keys, hashes), stored, f"block of {table}")
    return problems


def _sealed_rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[int, str, bytes | str, bool]]:
    """(seq, row name, digest, per-row entry?) for every row the chain sealed in ``table``, in sealing order."""
    for seq, name, digest in conn.execute("SELECT seq, row_key, row_hash FROM chain WHERE tbl = ? ORDER BY seq",
                                          (table,)):
        yield seq, name, digest, True
    for seq, keys, hashes in conn.execute("SELECT seq, row_keys, row_hashes FROM chain_blocks WHERE tbl = ? "
                                          "ORDER BY seq", (table,)):
        try:
            names = json.loads(keys)
        except ValueError:
            names = []
        if not isinstance(names, list) or not isinstance(hashes, bytes) or len(hashes) != 32 * len(names):
            yield seq, f"(block {seq})", b"", False  # a damaged block: its link check reports it too
            continue
        for i, name in enumerate(names):
            yield seq, str(name), hashes[32 * i:32 * i + 32], False


def _row_digests(conn: sqlite3.Connection, table: str, key: str) -> dict[str, tuple[int, bytes]]:
    """row name -> (rowid, its block digest) for every row now in ``table``."""
    rows: dict[str, tuple[int, bytes]] = {}
    for every_column in (False, True):
        try:
            for rowid, name, content in conn.execute(
                    f'SELECT rowid, "{key}", {row_json_sql(conn, table, every_column=every_column)} FROM {table} '
                    "ORDER BY rowid"):
                rows[str(name)] = (rowid, hashlib.sha256(content.encode("utf-8", "surrogatepass")).digest())
            return rows
        except sqlite3.OperationalError:
            rows.clear()  # a blob where JSON cannot hold one: tampered; tag every column and look again
    raise AssertionError("unreachable: every column tagged always renders")


def _check_table(conn: sqlite3.Connection, table: str, key: str) -> list[Problem]:
    rows = _row_digests(conn, table, key)
    legacy: dict[str, str] = {}
    if conn.execute("SELECT 1 FROM chain WHERE tbl = ? LIMIT 1", (table,)).fetchone():
        legacy = {str(name): content_hash(content) for name, content in conn.execute(
            f'SELECT "{key}", {content_sql(conn, table)} FROM {table}')}
    problems, last_rowid, last_key = [], 0, None
    for seq, name, digest, per_row in _sealed_rows(conn, table):
        found = rows.pop(name, None)
        if found is None:
            problems.append(Problem(f"{table} {name}", f"deleted (chain entry {seq})"))
            continue
        if (legacy.get(name) if per_row else found[1]) != digest:
            problems.append(Problem(f"{table} {name}", f"edited since it was recorded (chain entry {seq})"))
        if found[0] < last_rowid:
            problems.append(Problem(f"{table} {name}", f"reordered: now stored before {last_key} "
                                                       f"(chain entry {seq})"))
        last_rowid, last_key = found[0], name
    problems += [Problem(f"{table} {name}", f"inserted outside the collector (row {rowid}, not in the chain)")
                 for name, (rowid, _digest) in rows.items()]
    return problems


def _check_heads(conn: sqlite3.Connection, signed: list[Head], public_key: str | None) -> list[Problem]:
    problems = []
    links = dict(conn.execute("SELECT seq, link FROM chain UNION ALL SELECT seq, link FROM chain_blocks"))
    for head in signed:
        where = f"signed head at chain entry {head.seq} ({head.signed_at})"
        if public_key and head.public_key != public_key:
            problems.append(Problem(where, "signed by another key than the collector's"))
        elif not _signature_ok(head):
            problems.append(Problem(where, "signature does not match"))
        elif head.seq not in links:
            problems.append(Problem(where, "the chain no longer reaches this entry (truncated)"))
        elif links[head.seq] != head.link:
            problems.append(Problem(where, "the chain was rewritten: its link differs from the signed one"))
    return problems


def _signature_ok(head: Head) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(head.public_key)).verify(
            bytes.fromhex(head.signature), head.payload())
    except (InvalidSignature, ValueError):
        return False
    return True

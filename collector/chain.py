"""Tamper evidence: an append-only hash chain over the records, and signed heads.

Every committed transaction ends by *sealing*: each record row not yet in
``chain`` gets an entry holding the SHA-256 of its content and a link, the
SHA-256 of the previous link and this entry. Editing a row changes its hash;
deleting or inserting one leaves an entry without a row or a row without an
entry; reordering breaks the order the entries recorded. Rewriting the chain
to match is what the *signed heads* catch: the collector signs the last link
with an Ed25519 key derived from its secret key, and the heads are exported
for safekeeping elsewhere, where only the public key is needed to check them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
    """Chain every record row not yet chained; returns how many. Call inside the writing transaction."""
    last = conn.execute("SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    seq, link = last if last else (0, GENESIS)
    entries = []
    sha256 = hashlib.sha256
    for table, key in CHAINED:
        done = conn.execute("SELECT max(row_order) FROM chain WHERE tbl = ?", (table,)).fetchone()[0] or 0
        columns = _columns(conn, table)
        query = f'SELECT rowid, "{key}", {", ".join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid'
        for rowid, name, *values in conn.execute(query, (done,)):
            name = str(name)
            content = _content(table, values)
            if content is None:  # a value only SQLite renders exactly (a real, a NUL in text)
                content = conn.execute(f"SELECT {content_sql(conn, table)} FROM {table} WHERE rowid = ?",
                                       (rowid,)).fetchone()[0]
            digest = sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
            seq += 1
            link = sha256(f"{link}|{table}|{name}|{digest}".encode()).hexdigest()
            entries.append((seq, table, name, rowid, digest, link))
    conn.executemany("INSERT INTO chain (seq, tbl, row_key, row_order, row_hash, link) VALUES (?, ?, ?, ?, ?, ?)",
                     entries)
    return len(entries)


#: table -> its content expression; the schema of a table does not change under a running collector.
_CONTENT_SQL: dict[str, str] = {}
#: table -> its quoted column names, in order.
_COLUMNS: dict[str, list[str]] = {}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    if table not in _COLUMNS:
        _COLUMNS[table] = [f'"{row[1]}"' for row in conn.execute(f"PRAGMA table_info({table})")]
    return _COLUMNS[table]


def _content(table: str, values: list) -> str | None:
    """What :func:`content_sql` gives for a row of ``values``, built in Python; None when only SQLite can say.

    Sealing runs for every record on the hot path, and SQLite's per-column
    CASE costs several times more than this. Text, integers, NULL and blobs
    render exactly as the SQL expression renders them (SQLite's length() of
    valid text counts characters, as len() does, up to a NUL); a real (SQLite's
    own float formatting) or text with a NUL falls back to the SQL expression,
    which :func:`verify` always uses, so the two can never disagree silently.
    """
    parts = [f"|s{len(value)}:{value}" if type(value) is str else _render(value) for value in values]
    if None in parts:
        return None
    content = table + "".join(parts)
    # A NUL can only come from text (integers and hex have none), where SQLite's length() stops at it.
    return None if "\0" in content else content


def _render(value: object) -> str | None:
    """One non-text value as :func:`content_sql` renders it, or None when only SQLite can say."""
    kind = type(value)
    if value is None:
        return "|n"
    if kind is int:
        text = str(value)
        return f"|i{len(text)}:{text}"
    if kind is bytes:
        return f"|x{len(value)}:{value.hex()}"
    return None


def signing_key(secret: bytes) -> Ed25519PrivateKey:
    """The collector's head-signing key, derived from its secret key (so one file holds both)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"hcp-chain-sign\0" + secret).digest())


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign_head(conn: sqlite3.Connection, secret: bytes, now: datetime) -> Head | None:
    """Sign the current chain head and store it; None when the chain is empty or already signed there."""
    last = conn.execute("SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    if last is None:
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
        problems = list(_check_links(conn))
        for table, key in CHAINED:
            problems += _check_table(conn, table, key)
        problems += _check_heads(conn, [*heads(conn), *trusted], public_key)
    finally:
        conn.text_factory = factory
    return problems


def _check_links(conn: sqlite3.Connection) -> Iterator[Problem]:
    link, expected_seq = GENESIS, 1
    for seq, table, key, digest, stored in conn.execute(
            "SELECT seq, tbl, row_key, row_hash, link FROM chain ORDER BY seq"):
        if seq != expected_seq:
            yield Problem(f"chain entry {expected_seq}", f"missing (the next entry is {seq})")
        link = next_link(link, table, key, digest)
        if link != stored:
            yield Problem(f"chain entry {seq}", f"link does not follow from the entries before it ({table} {key})")
            link = stored  # report each break once, then go on from the stored link
        expected_seq = seq + 1


def _check_table(conn: sqlite3.Connection, table: str, key: str) -> list[Problem]:
    rows = {}
    for rowid, name, content in conn.execute(
            f'SELECT rowid, "{key}", {content_sql(conn, table)} FROM {table} ORDER BY rowid'):
        rows[str(name)] = (rowid, content_hash(content))
    problems, last_rowid, last_key = [], 0, None
    for seq, name, digest in conn.execute("SELECT seq, row_key, row_hash FROM chain WHERE tbl = ? ORDER BY seq",
                                          (table,)):
        found = rows.pop(name, None)
        if found is None:
            problems.append(Problem(f"{table} {name}", f"deleted (chain entry {seq})"))
            continue
        if found[1] != digest:
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
    links = dict(conn.execute("SELECT seq, link FROM chain"))
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

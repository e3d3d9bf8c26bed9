"""What the hash chain covers, and each row's canonical bytes: one definition for sealing and verifying.

Version 2 of the chain (migration m009_chain_v2) builds a row's bytes in
Python from the values the database driver returns, so SQLite and PostgreSQL
give the same bytes for the same row and nothing depends on an engine's JSON
or text casts. A row's canonical text is ``ascii()`` of the tuple
``(table, value, value, ...)`` over the table's columns in the order listed
here; its digest is the SHA-256 of that text (ASCII, so its bytes are plain).
Each value is one of:

- text: a ``str``, written as Python writes a string literal with every
  non-ASCII character escaped (``\\xNN``, ``\\uNNNN``, ``\\UNNNNNNNN``): this does
  not depend on the Unicode version of the Python that runs it;
- integer: an ``int``, in decimal (a boolean column is read as 0 or 1);
- real: a ``float``, shortest round-trip decimal (``repr``);
- null: ``None``;
- blob: ``bytes``, written as a bytes literal.

The five are told apart by their literal syntax, and a tuple literal cannot be
imitated by a value inside it, so two different rows never share a text.
The column lists are explicit (a test holds them equal to the migrated
schema): a column added by hand is caught by the schema check, not hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

#: The version of the canonical row bytes and block links written by this code.
VERSION = 2


@dataclass(frozen=True)
class Chained:
    """A table whose rows decide a count or an outcome, chained row by row."""

    table: str
    key: str  # the column naming a row in reports (unique)
    columns: tuple[str, ...]
    #: SQLite: the table has a rowid, its insertion order: sealed by rowid range, and verify checks the order.
    #: Without one (``WITHOUT ROWID``), new rows are found through ``chain_queue``.
    rowid: bool = True

    @property
    def pg_order(self) -> str:
        """PostgreSQL's insertion order of the table: its ``id`` identity, else its ``row_order`` identity."""
        return "id" if self.key == "id" else "row_order"

    @property
    def key_index(self) -> int:
        """Where the key sits in a row selected by :meth:`select` (the table name comes first)."""
        return 1 + self.columns.index(self.key)

    def select(self, alias: str = "") -> str:
        """The select list giving a canonical row: the table's name, then its columns in order."""
        prefix = f"{alias}." if alias else ""
        return ", ".join([f"'{self.table}'", *(f'{prefix}"{column}"' for column in self.columns)])


#: Every chained table, in sealing order.
TABLES = (
    Chained("ratings", "rating_id", (
        "rating_id", "device_id", "seq", "kind", "channel", "case_ids", "score", "rated_at", "clock_synced",
        "received_at", "day", "reasons", "prompt_id", "hall_id", "window_id", "clerk_id", "item_code",
        "ack_outcome", "ack_reason")),
    Chained("rating_decisions", "id", ("id", "rating_id", "outcome", "reason", "decided_at")),
    Chained("rating_links", "rating_id", ("rating_id", "case_id", "linked_at")),
    Chained("followups", "id", ("id", "rating_id", "hall_id", "window_id", "clerk_id", "score", "rated_at",
                                "opened_at", "contact_due", "rectify_due", "spot_check")),
    Chained("followup_events", "id", ("id", "followup_id", "action", "state", "actor", "at", "note")),
    Chained("followup_contacts", "followup_id", ("followup_id", "sealed")),
    Chained("appeals", "id", ("id", "rating_id", "filed_by", "filed_at", "evidence", "review_due")),
    Chained("appeal_decisions", "id", ("id", "appeal_id", "upheld", "reviewer", "decided_at", "reason")),
    Chained("exclusions", "id", ("id", "rating_id", "kind", "decided_by", "decided_at", "reason", "appeal_id")),
    Chained("malicious_raters", "id", ("id", "rater_key", "action", "actor", "at", "reason")),
    Chained("rating_texts", "rating_id", ("rating_id", "text")),
    # Chained from m009_chain_v2 on:
    Chained("cases", "case_id", ("case_id", "hall_id", "window_id", "item_code", "item_name", "clerk_id",
                                 "intake", "batch_id", "applicant_key", "completed_at", "received_at"), rowid=False),
    Chained("rating_claims", "unit_key", ("unit_key", "rating_id"), rowid=False),
    Chained("device_events", "id", ("id", "device_id", "action", "hall_id", "window_id", "at")),
    # Chained from m011_console on:
    Chained("exclusion_reversals", "id", ("id", "exclusion_id", "rating_id", "decided_by", "decided_at", "reason")),
    Chained("console_audit", "id", ("id", "at", "actor", "action", "target", "hall_id", "address", "detail")),
)
BY_NAME = {spec.table: spec for spec in TABLES}


def row_digests(rows: Iterable[tuple]) -> bytes:
    """The SHA-256 digests of canonical rows (from :meth:`Chained.select`), 32 bytes each, concatenated.

    The hot path of every commit: one ``ascii`` and one SHA-256 per row.
    """
    sha256 = hashlib.sha256
    return b"".join([sha256(ascii(row).encode("ascii")).digest() for row in rows])


def row_digest(row: tuple) -> bytes:
    """The SHA-256 digest of one canonical row."""
    return hashlib.sha256(ascii(row).encode("ascii")).digest()


def block_link(previous: str, seq: int, table: str, first: int, last: int, keys: str, hashes: bytes) -> str:
    """The link of a version-2 block: the previous link, its place in the chain, and everything it holds."""
    return hashlib.sha256(f"hcp-chain/{VERSION}|{previous}|{seq}|{table}|{first}|{last}|{keys}|"
                          .encode("utf-8", "surrogatepass") + hashes).hexdigest()

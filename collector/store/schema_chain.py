"""The hash chain in blocks (hcp.collector.store.chain): one entry per table per commit, not per row.

Migration m004 chained every record row with an entry of its own: three
b-tree inserts per row, a third of the collector's time on a backlog. From
m006 on, a commit seals each table's new rows as one *block* that still
holds every row's name and SHA-256, so ``hcp verify`` names the row that was
edited, deleted, inserted or reordered, as before. Entries already in
``chain`` stay and are verified as they are; blocks continue their numbering
and their links.
"""

from __future__ import annotations

import sqlite_utils

from hcp.db import make_append_only, run_script

_SQL = """
CREATE TABLE chain_blocks (
    seq         INTEGER PRIMARY KEY,   -- one numbering with chain: a block continues after its last entry
    tbl         TEXT NOT NULL,
    first_order INTEGER NOT NULL,      -- rowid of the block's first row when sealed
    last_order  INTEGER NOT NULL,      -- rowid of its last row: where the next seal of this table starts
    row_keys    TEXT NOT NULL,         -- JSON list of the rows' names, in rowid order
    row_hashes  BLOB NOT NULL,         -- the rows' SHA-256 digests, 32 bytes each, in the same order
    link        TEXT NOT NULL          -- SHA-256 of the previous link and this block
);
CREATE INDEX chain_blocks_by_order ON chain_blocks (tbl, last_order)
"""

#: Tables of this migration whose rows are records: never updated or deleted.
APPEND_ONLY = ("chain_blocks",)


def m006_chain_blocks(db: sqlite_utils.Database) -> None:
    """The chain's blocks, append-only like the records they seal."""
    run_script(db, _SQL)
    make_append_only(db, APPEND_ONLY)

"""The complete, engine-neutral hash chain (hcp.collector.store.chain, version 2).

Before this migration the chain sealed each table's rows by rowid range and
hashed SQLite's own JSON text of a row, and it left out the case records, the
unit claims and the device registrations. From here on:

- every chained table (``chain_rows.TABLES``) is sealed by the commit that
  wrote its rows: the rows are hashed in Python and appended as one block
  per table. A table with a rowid is read by rowid range from where its last
  block ended (SQLite has one writer at a time, so the range is exactly the
  commit's rows). A table without one (``cases``, ``rating_claims``) has an
  insert trigger that queues the new row's key in ``chain_queue``; the seal
  reads the queued rows and empties the queue. The queue is work state and
  engine-neutral: each transaction sees only its own entries and committed
  ones, so with several writers each seals exactly what it wrote, and the
  lock the seal takes keeps the blocks in commit order (PostgreSQL: an
  advisory lock; there, every chained table can go through the queue);
- ``chain_blocks`` gains ``version``: 1 for blocks written before, verified as
  they were; 2 for new ones, which continue the numbering and the links;
- device registrations become append-only events, ``device_events``;
  ``devices`` stays the current state, and verify checks it against them;
- case records and unit claims, only ever inserted, become append-only; the
  rows already there, and the registrations, are sealed at the end of this
  migration (the store signs a head right after).

``pending_cases``, ``device_status``, ``device_fleet``, the notification and
upstream work lists and the sealed contacts and identities are work state or
erasable personal data: not chained.
"""

from __future__ import annotations

import sqlite_utils

from hcp.collector.store.chain_rows import TABLES
from hcp.db import make_append_only, run_script

_SQL = """
ALTER TABLE chain_blocks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE TABLE chain_queue (
    seq     INTEGER PRIMARY KEY,
    tbl     TEXT NOT NULL,
    row_key BLOB NOT NULL           -- the row's key as stored, text or integer (BLOB: no affinity)
);
CREATE TABLE device_events (
    id        INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    action    TEXT NOT NULL CHECK (action IN ('register', 'remove')),
    hall_id   TEXT,                 -- NULL for remove
    window_id TEXT,
    at        TEXT NOT NULL
);
CREATE INDEX device_events_by_device ON device_events (device_id, id)
"""

#: Tables of this migration whose rows are records: never updated or deleted.
APPEND_ONLY = ("device_events", "cases", "rating_claims")


def m009_chain_v2(db: sqlite_utils.Database) -> None:
    """Chain every record table through a queue, registrations as events; seal what is already there."""
    from hcp.collector.store.chain import seal

    run_script(db, _SQL)
    for spec in (spec for spec in TABLES if not spec.rowid):
        db.execute(f"CREATE TRIGGER {spec.table}_chain AFTER INSERT ON {spec.table} BEGIN "
                   f"INSERT INTO chain_queue (tbl, row_key) VALUES ('{spec.table}', NEW.\"{spec.key}\"); END")
    make_append_only(db, APPEND_ONLY)
    db.execute("INSERT INTO chain_queue (tbl, row_key) SELECT 'cases', case_id FROM cases "
               "ORDER BY received_at, case_id")
    db.execute("INSERT INTO chain_queue (tbl, row_key) SELECT 'rating_claims', unit_key FROM rating_claims "
               "ORDER BY rating_id, unit_key")
    db.execute("INSERT INTO device_events (device_id, action, hall_id, window_id, at) "
               "SELECT device_id, 'register', hall_id, window_id, registered_at FROM devices "
               "ORDER BY registered_at, device_id")
    # Tables a later migration creates are chained from that step on.
    existing = set(db.table_names())
    seal(db.conn, [spec for spec in TABLES if spec.table in existing])

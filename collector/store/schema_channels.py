"""The tables of the other channels (phone page, paper, hotline), reminders and upstream forwarding.

``rating_texts`` holds a rater's optional words, a record like the rating it
belongs to (append-only and chained). ``case_contacts`` holds an applicant's
phone number for the reminder, sealed under the collector key; it is never
exported, chained or logged, and may be deleted once the case is rated.
``notifications`` and ``upstream_outbox`` are work lists with a status each:
their primary keys are what makes a reminder, an alert or a forwarded record
happen once, whichever process or restart tries again.
"""

from __future__ import annotations

import sqlite_utils

from hcp.db import make_append_only, run_script

_SQL = """
CREATE TABLE rating_texts (
    rating_id TEXT PRIMARY KEY REFERENCES ratings(rating_id),
    text      TEXT NOT NULL
);
CREATE TABLE case_contacts (
    case_id TEXT PRIMARY KEY,
    sealed  BLOB NOT NULL          -- AES-GCM under a key derived from the collector key
);
CREATE TABLE notifications (
    key        TEXT PRIMARY KEY,   -- reminder:<case_id> or alert:<rating_id>: sent once
    kind       TEXT NOT NULL CHECK (kind IN ('reminder', 'alert')),
    subject    TEXT NOT NULL,      -- the case or rating it is about
    status     TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    sent_at    TEXT
);
CREATE INDEX notifications_due ON notifications (status, next_at);
CREATE TABLE upstream_outbox (
    record_id  TEXT PRIMARY KEY,   -- the idempotency key sent upstream: the rating id, or kind:id
    kind       TEXT NOT NULL,      -- rating, exclusion, appeal-decision
    payload    TEXT NOT NULL,      -- JSON in hcp's own words; mapped to the region's codes when sent
    status     TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'rejected')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    done_at    TEXT
);
CREATE INDEX upstream_outbox_due ON upstream_outbox (status, next_at);
-- How far each scanner has read a record table (by rowid or id).
CREATE TABLE channel_cursors (
    name TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
"""


def m005_channels(db: sqlite_utils.Database) -> None:
    """Rating texts, applicant contacts, notifications, the upstream outbox and scan cursors."""
    run_script(db, _SQL)
    make_append_only(db, ("rating_texts",))


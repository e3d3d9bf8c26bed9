"""The lifecycle's tables (follow-ups, appeals, exclusions, malicious raters, hash chain), as one migration.

Records are append-only: SQLite triggers abort any UPDATE or DELETE of the
ratings, the decisions and every lifecycle record, so a correction can only
be a new record that references the old one, whatever code or tool runs.
"""

from __future__ import annotations

import sqlite_utils

from hcp.db import make_append_only, run_script

_SQL = """
CREATE INDEX IF NOT EXISTS cases_by_completion ON cases (completed_at);
-- 差评 follow-up (回访核实整改): the record, then its steps as events.
CREATE TABLE followups (
    id           INTEGER PRIMARY KEY,
    rating_id    TEXT NOT NULL UNIQUE REFERENCES ratings(rating_id),
    hall_id      TEXT NOT NULL,
    window_id    TEXT NOT NULL,
    clerk_id     TEXT,
    score        INTEGER NOT NULL,
    rated_at     TEXT NOT NULL,    -- when the periods start
    opened_at    TEXT NOT NULL,
    contact_due  TEXT,             -- NULL: the profile states no deadline
    rectify_due  TEXT,
    spot_check   INTEGER NOT NULL  -- drawn for a spot check once closed
);
CREATE TABLE followup_events (
    id          INTEGER PRIMARY KEY,
    followup_id INTEGER NOT NULL REFERENCES followups(id),
    action      TEXT NOT NULL,
    state       TEXT NOT NULL,     -- the state after this step
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL,
    note        TEXT NOT NULL
);
CREATE INDEX followup_events_by_followup ON followup_events (followup_id, id);
-- The rater's contact, for the follow-up role only: encrypted under a key
-- derived from the collector key, read by one command, never exported.
CREATE TABLE followup_contacts (
    followup_id INTEGER PRIMARY KEY REFERENCES followups(id),
    sealed      BLOB NOT NULL
);
CREATE TABLE appeals (
    id          INTEGER PRIMARY KEY,
    rating_id   TEXT NOT NULL REFERENCES ratings(rating_id),
    filed_by    TEXT NOT NULL,
    filed_at    TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    review_due  TEXT
);
CREATE INDEX appeals_by_rating ON appeals (rating_id);
CREATE TABLE appeal_decisions (
    id          INTEGER PRIMARY KEY,
    appeal_id   INTEGER NOT NULL UNIQUE REFERENCES appeals(id),
    upheld      INTEGER NOT NULL,
    reviewer    TEXT NOT NULL,
    decided_at  TEXT NOT NULL,
    reason      TEXT NOT NULL
);
-- Ratings kept but left out of statistics; at most one per rating.
CREATE TABLE exclusions (
    id          INTEGER PRIMARY KEY,
    rating_id   TEXT NOT NULL UNIQUE REFERENCES ratings(rating_id),
    kind        TEXT NOT NULL CHECK (kind IN ('invalid', 'malicious')),
    decided_by  TEXT NOT NULL,
    decided_at  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    appeal_id   INTEGER REFERENCES appeals(id)
);
-- The malicious raters' list as events (add, remove) by pseudonym.
CREATE TABLE malicious_raters (
    id          INTEGER PRIMARY KEY,
    rater_key   TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX malicious_raters_by_key ON malicious_raters (rater_key, id);
-- The hash chain over the records (hcp.collector.chain), and its signed heads.
CREATE TABLE chain (
    seq       INTEGER PRIMARY KEY,
    tbl       TEXT NOT NULL,
    row_key   TEXT NOT NULL,
    row_order INTEGER NOT NULL,    -- the row's rowid when sealed
    row_hash  TEXT NOT NULL,
    link      TEXT NOT NULL,
    UNIQUE (tbl, row_key)
);
CREATE INDEX chain_by_order ON chain (tbl, row_order);
CREATE TABLE chain_heads (
    id         INTEGER PRIMARY KEY,
    seq        INTEGER NOT NULL,
    link       TEXT NOT NULL,
    signed_at  TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);
"""

#: Tables whose rows are records: never updated or deleted.
APPEND_ONLY = ("ratings", "rating_decisions", "rating_links", "followups", "followup_events", "followup_contacts",
               "appeals", "appeal_decisions", "exclusions", "malicious_raters", "chain", "chain_heads")


def m004_lifecycle(db: sqlite_utils.Database) -> None:
    """Follow-ups, appeals, exclusions, malicious raters, the hash chain; records made append-only."""
    run_script(db, _SQL)
    make_append_only(db, APPEND_ONLY)

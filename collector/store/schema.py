"""The collector database's schema, as migrations (applied by ``hcp.db.migrate``).

The one-rating rules live in ``rating_claims``: its primary key is the rule.
A rating that is accepted claims its unit keys (``case:…``, ``batch:…``,
``hall:…``); a second rating for the same unit cannot claim it, whichever
process or collector tries. Ratings are written once and never updated;
later decisions are appended to ``rating_decisions``.
"""

from __future__ import annotations

import sqlite_utils

from hcp.collector.store.schema_chain import m006_chain_blocks
from hcp.collector.store.schema_chain_v2 import m009_chain_v2
from hcp.collector.store.schema_channels import m005_channels
from hcp.collector.store.schema_console import m011_console
from hcp.collector.store.schema_figures import m010_figures
from hcp.collector.store.schema_lifecycle import m004_lifecycle
from hcp.collector.store.schema_meta import m008_store_meta
from hcp.collector.store.schema_upstream import m007_upstream_fields
from hcp.db import run_script

_M001 = """
CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    hall_id       TEXT NOT NULL,
    window_id     TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
CREATE TABLE device_status (
    device_id        TEXT PRIMARY KEY REFERENCES devices(device_id) ON DELETE CASCADE,
    state            TEXT NOT NULL,
    version          TEXT NOT NULL,
    outbox_depth     INTEGER,
    oldest_unsent_at TEXT,
    clock_synced     INTEGER,
    at               TEXT,
    last_seen        TEXT NOT NULL
);
CREATE TABLE cases (
    case_id       TEXT PRIMARY KEY,
    hall_id       TEXT NOT NULL,
    window_id     TEXT NOT NULL,
    item_code     TEXT NOT NULL,
    item_name     TEXT NOT NULL,
    clerk_id      TEXT NOT NULL,
    intake        TEXT NOT NULL,
    batch_id      TEXT,
    applicant_key TEXT,            -- HMAC pseudonym; the applicant id itself is never stored
    completed_at  TEXT NOT NULL,
    received_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE ratings (
    rating_id    TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL,    -- no foreign key: ratings outlive a removed device
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    case_ids     TEXT NOT NULL,    -- JSON list
    score        INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    rated_at     TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    received_at  TEXT NOT NULL,
    day          TEXT NOT NULL,    -- China day the rating counts on
    reasons      TEXT NOT NULL,    -- JSON list
    prompt_id    TEXT,
    hall_id      TEXT NOT NULL,
    window_id    TEXT NOT NULL,
    clerk_id     TEXT,
    item_code    TEXT,
    ack_outcome  TEXT NOT NULL,    -- the first answer, given again on every resend
    ack_reason   TEXT NOT NULL
);
CREATE TABLE rating_claims (
    unit_key  TEXT PRIMARY KEY,
    rating_id TEXT NOT NULL REFERENCES ratings(rating_id)
) WITHOUT ROWID;
CREATE TABLE rating_decisions (
    id         INTEGER PRIMARY KEY,
    rating_id  TEXT NOT NULL REFERENCES ratings(rating_id),
    outcome    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
CREATE INDEX rating_decisions_by_rating ON rating_decisions (rating_id, id);
-- A work list, not history: rows go when the rating is decided.
CREATE TABLE pending_cases (
    case_id   TEXT NOT NULL,
    rating_id TEXT NOT NULL REFERENCES ratings(rating_id),
    PRIMARY KEY (case_id, rating_id)
) WITHOUT ROWID;
CREATE INDEX pending_cases_by_rating ON pending_cases (rating_id);
-- The current outcome: the latest decision, else the first answer.
CREATE VIEW rating_outcomes AS
SELECT r.rating_id, r.rowid AS received_order,
       COALESCE(d.outcome, r.ack_outcome) AS outcome,
       COALESCE(d.reason, r.ack_reason) AS reason,
       d.decided_at
FROM ratings r
LEFT JOIN rating_decisions d ON d.id = (
    SELECT max(id) FROM rating_decisions WHERE rating_id = r.rating_id);
"""


def m001_collector(db: sqlite_utils.Database) -> None:
    """Devices, cases, ratings, claims, decisions."""
    run_script(db, _M001)


def m002_rating_links(db: sqlite_utils.Database) -> None:
    """Links of clerk-button ratings (no case id) to the case the collector chose for them."""
    db.execute("CREATE TABLE rating_links (rating_id TEXT PRIMARY KEY REFERENCES ratings (rating_id), "
               "case_id TEXT NOT NULL, linked_at TEXT NOT NULL)")
    db.execute("CREATE INDEX rating_links_case ON rating_links (case_id)")


_FLEET_TABLE = """
CREATE TABLE IF NOT EXISTS device_fleet (
    device_id        TEXT PRIMARY KEY REFERENCES devices(device_id) ON DELETE CASCADE,
    settings_version INTEGER,
    boot_id          TEXT,
    uptime_s         REAL,
    clock_ref_at     TEXT
)"""


def m003_fleet(db: sqlite_utils.Database) -> None:
    """Fleet health: the settings version each terminal runs and its clock reference (hcp.collector.fleet)."""
    db.execute(_FLEET_TABLE)


MIGRATIONS = [m001_collector, m002_rating_links, m003_fleet, m004_lifecycle, m005_channels, m006_chain_blocks,
              m007_upstream_fields, m008_store_meta, m009_chain_v2, m010_figures, m011_console]

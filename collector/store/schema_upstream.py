"""The case details the provincial platform's formats need, and the rater's identity where a format is real-name.

``case_upstream`` keeps what a case record carries for upstream only
(department and item codes, the clerk's name, acceptance, promised time,
行政区划); it is written once with the case and never edited.
``rater_identities`` keeps the applicant's certificate number and name,
sealed with AES-GCM under a key of its own (derived from the collector key,
apart from the contacts' key); it exists only where the upstream preset is
real-name, is never exported, chained or logged, and its rows are deleted
once the platform has answered on the case's rating and the preset's
retention has passed, or, for a case never rated, the preset's ``max_days``
after it arrived.
"""

from __future__ import annotations

import sqlite_utils

from hcp.db import run_script

_SQL = """
CREATE TABLE case_upstream (
    case_id          TEXT PRIMARY KEY,
    dept_code        TEXT,
    handle_item_code TEXT,
    clerk_name       TEXT,
    accepted_at      TEXT,
    promised_days    INTEGER,
    area_code        TEXT,
    applicant_type   TEXT
) WITHOUT ROWID;
CREATE TABLE rater_identities (
    case_id TEXT PRIMARY KEY,
    sealed      BLOB NOT NULL,     -- AES-GCM: {"cert": ..., "name": ...}; its own key
    kept_at     TEXT NOT NULL,     -- a case never rated (failed intake, no default) is erased max_days after
    erase_after TEXT               -- set when the case's rating is done upstream: done + retention
);
CREATE INDEX rater_identities_kept ON rater_identities (kept_at);
CREATE INDEX rater_identities_erase ON rater_identities (erase_after) WHERE erase_after IS NOT NULL;
"""


def m007_upstream_fields(db: sqlite_utils.Database) -> None:
    """Case details for the platform's formats, and sealed rater identities for real-name presets."""
    run_script(db, _SQL)

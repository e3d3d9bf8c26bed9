"""The console's tables (accounts, roles, sessions, the audit log) and exclusion reversals, as one migration.

Accounts, roles and sessions are work state: they change (a password reset, a
role taken away, a session ended). What people did with them is not: every
login, action and contact reveal is a row of ``console_audit``, append-only and
covered by the hash chain, so an edited or deleted audit row fails ``hcp verify``.
An exclusion is undone by a new record, ``exclusion_reversals``, never by an edit.
"""

from __future__ import annotations

import sqlite_utils

from hcp.db import make_append_only, run_script

#: The console's roles: hall manager, follow-up officer, appeal reviewer, supervisor, operator.
ROLES = ("manager", "followup", "reviewer", "supervisor", "operator")

_SQL = f"""
CREATE TABLE console_users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,     -- argon2id, PHC string
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    changed_at    TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE console_roles (
    user_name TEXT NOT NULL REFERENCES console_users(name),
    role      TEXT NOT NULL CHECK (role IN ({", ".join(f"'{role}'" for role in ROLES)})),
    hall_id   TEXT NOT NULL,         -- '*': every hall
    PRIMARY KEY (user_name, role, hall_id)
) WITHOUT ROWID;
-- Only the SHA-256 of a session id is kept: a copy of the database opens no session.
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES console_users(name),
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_sessions_by_user ON console_sessions (user_name);
CREATE TABLE console_audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,           -- the account, or cli:<os user> for hcp users
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    hall_id TEXT,
    address TEXT NOT NULL,           -- the client's address, or 'local'
    detail  TEXT NOT NULL
);
CREATE INDEX console_audit_by_hall ON console_audit (hall_id, id);
-- The work queue reads a hall's follow-ups newest first.
CREATE INDEX followups_by_hall ON followups (hall_id, id);
CREATE TABLE exclusion_reversals (
    id           INTEGER PRIMARY KEY,
    exclusion_id INTEGER NOT NULL UNIQUE REFERENCES exclusions(id),
    rating_id    TEXT NOT NULL REFERENCES ratings(rating_id),
    decided_by   TEXT NOT NULL,
    decided_at   TEXT NOT NULL,
    reason       TEXT NOT NULL
)
"""

#: Tables of this migration whose rows are records: never updated or deleted.
APPEND_ONLY = ("console_audit", "exclusion_reversals")


def m011_console(db: sqlite_utils.Database) -> None:
    """Console accounts, roles and sessions; the audit log and exclusion reversals, append-only records."""
    run_script(db, _SQL)
    make_append_only(db, APPEND_ONLY)

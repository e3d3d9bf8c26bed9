"""What a collector database was made for: migration ``m008_store_meta`` and the policy it records.

A database is made under one policy (a preset, or a file, and overrides) for one
region. The commands that read it take the policy from here, so a command run
without ``-c`` does not count a 乌兰察布 database under the 河南 default, and a
command given another region's policy is refused instead of applying its rules.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

#: The row that holds the policy section (JSON) the database was made under.
POLICY_KEY = "policy"


def m008_store_meta(db: sqlite_utils.Database) -> None:
    """Facts about the database itself, one value per key; and the registration requests imported."""
    db.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    # A signed request is a one-time permission: importing it again (a copy found later, or replayed after
    # the terminal was moved or removed) is refused.
    db.execute("CREATE TABLE imported_requests (digest TEXT PRIMARY KEY, device_id TEXT NOT NULL, "
               "imported_at TEXT NOT NULL) WITHOUT ROWID")


@dataclass(frozen=True)
class RecordedPolicy:
    """The policy a database was made under: the config's [policy] section and the region it named."""

    section: dict[str, Any]
    region: str
    code: str

    @property
    def label(self) -> str:
        """E.g. ``ulanqab (乌兰察布)``."""
        source = self.section.get("file") or self.section.get("preset")
        return f"{source} ({self.region})"


def recorded_policy(conn: Any) -> RecordedPolicy | None:
    """The recorded policy, or None for a database made before it was recorded."""
    row = conn.execute("SELECT value FROM store_meta WHERE key = ?", [POLICY_KEY]).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    return RecordedPolicy(data["section"], data["region"], data["code"])


def record_policy(conn: Any, policy: RecordedPolicy) -> None:
    """Record (or replace) the database's policy; the caller holds the transaction."""
    value = json.dumps({"section": policy.section, "region": policy.region, "code": policy.code},
                       ensure_ascii=False, sort_keys=True)
    conn.execute("INSERT INTO store_meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [POLICY_KEY, value])


def request_digest(payload: dict[str, Any]) -> str:
    """The identity of a signed registration request: SHA-256 of its canonical payload (with its nonce)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def claim_request(conn: Any, digest: str, device_id: str, at: str) -> str | None:
    """Record a request as imported; when it already was, return when (and record nothing)."""
    row = conn.execute("SELECT imported_at FROM imported_requests WHERE digest = ?", [digest]).fetchone()
    if row is not None:
        return str(row[0])
    conn.execute("INSERT INTO imported_requests (digest, device_id, imported_at) VALUES (?, ?, ?)",
                 [digest, device_id, at])
    return None

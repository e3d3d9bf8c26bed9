"""The SQL of the sealed rater identities that real-name upstream presets send (collector/upstream_identity.py).

:class:`IdentityQueries` is a mixin of :class:`~hcp.collector.store.Store`.
It stores and erases sealed bytes only: sealing and opening stay with
:class:`hcp.collector.upstream_identity.Identities`, under a key of their own
that :meth:`IdentityQueries.sealing_key` derives from the collector key, which
never leaves the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcp.collector.store.engine import Engine


class IdentityQueries:
    """Rows of ``rater_identities``; mixed into the Store, which provides ``_conn``, ``_unit`` and ``_key``."""

    _conn: Engine
    _unit: Callable[[], AbstractContextManager[None]]
    _key: bytes
    exclusive: Callable[[str], AbstractContextManager[bool]]

    def sealing_key(self, purpose: str) -> bytes:
        """A 256-bit key for sealing what ``purpose`` names, derived from the collector key."""
        return hashlib.sha256(purpose.encode() + b"\0" + self._key).digest()

    def keep_sealed_identities(self, rows: Sequence[tuple[str, bytes, str]]) -> int:
        """Store ``(case_id, sealed, kept_at)`` rows; a case already kept is left as it is. How many were new."""
        conn = self._conn
        with self._unit():
            return conn.executemany_count("INSERT INTO rater_identities (case_id, sealed, kept_at) "
                                          "VALUES (?, ?, ?) ON CONFLICT DO NOTHING", rows)

    def sealed_identity(self, case_id: str) -> bytes | None:
        """The sealed identity kept for ``case_id``, or None."""
        row = self._conn.execute("SELECT sealed FROM rater_identities WHERE case_id = ?", (case_id,)).fetchone()
        return None if row is None else row[0]

    def schedule_identity_erasure(self, rows: Sequence[tuple[str, str]]) -> None:
        """Set ``(erase_after, case_id)`` on identities that have none yet (the platform answered on them)."""
        self._conn.executemany("UPDATE rater_identities SET erase_after = ? WHERE case_id = ? AND "
                               "erase_after IS NULL", rows)

    def erase_identities(self, erase_by: str, kept_by: str) -> int:
        """Delete the identities due for erasure by ``erase_by`` or kept since ``kept_by`` or before; how many."""
        with self.exclusive("retention") as mine:  # a DELETE by time: the same whoever runs it
            if not mine:
                return 0
            return self._conn.execute("DELETE FROM rater_identities WHERE erase_after <= ? OR kept_at <= ?",
                                      (erase_by, kept_by)).rowcount

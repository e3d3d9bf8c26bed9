"""The console's accounts, roles, sessions and audit log (migration ``m011_console``).

:class:`AccountQueries` is a mixin of :class:`~hcp.collector.store.core.Store`.
Password hashing, session ids and the rules of who may do what stay in
:mod:`hcp.collector.console.auth`; here are the rows. Accounts, roles and
sessions are work state; the audit log is a chained, append-only record.
Every statement runs on SQLite and PostgreSQL alike (``?`` placeholders, no
engine functions); times are UTC text compared as text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    """A console account as stored: name, password hash, disabled, roles as (role, hall id) pairs."""

    name: str
    password_hash: str
    disabled: bool
    created_at: str
    changed_at: str
    roles: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log: who did what, when, to what, from where."""

    id: int
    at: str
    actor: str
    action: str
    target: str
    hall_id: str | None
    address: str
    detail: str


class AccountQueries:
    """Accounts, roles, sessions and the audit log, mixed into the Store."""

    _conn: sqlite3.Connection
    _unit: Callable[[], AbstractContextManager[None]]

    # -- accounts ---------------------------------------------------------------

    def add_account(self, name: str, password_hash: str, at: str) -> None:
        """A new account without roles; the caller checked the name is free."""
        with self._unit():
            self._conn.execute("INSERT INTO console_users (name, password_hash, disabled, created_at, changed_at) "
                               "VALUES (?, ?, 0, ?, ?)", (name, password_hash, at, at))

    def account(self, name: str) -> Account | None:
        """One account with its roles, or None."""
        row = self._conn.execute("SELECT name, password_hash, disabled, created_at, changed_at FROM console_users "
                                 "WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        roles = tuple(self._conn.execute("SELECT role, hall_id FROM console_roles WHERE user_name = ? "
                                         "ORDER BY role, hall_id", (name,)).fetchall())
        return Account(row[0], row[1], bool(row[2]), row[3], row[4], roles)

    def accounts(self) -> list[Account]:
        """Every account with its roles, by name."""
        names = [row[0] for row in self._conn.execute("SELECT name FROM console_users ORDER BY name")]
        return [account for name in names if (account := self.account(name)) is not None]

    def set_password_hash(self, name: str, password_hash: str, at: str) -> None:
        """Replace an account's password hash and end its sessions."""
        with self._unit():
            self._conn.execute("UPDATE console_users SET password_hash = ?, changed_at = ? WHERE name = ?",
                               (password_hash, at, name))
            self._conn.execute("DELETE FROM console_sessions WHERE user_name = ?", (name,))

    def set_disabled(self, name: str, disabled: bool, at: str) -> None:
        """Disable (ending its sessions) or enable an account."""
        with self._unit():
            self._conn.execute("UPDATE console_users SET disabled = ?, changed_at = ? WHERE name = ?",
                               (int(disabled), at, name))
            if disabled:
                self._conn.execute("DELETE FROM console_sessions WHERE user_name = ?", (name,))

    def set_roles(self, name: str, roles: Sequence[tuple[str, str]], at: str) -> None:
        """Replace an account's roles with ``roles`` ((role, hall id) pairs) and end its sessions."""
        with self._unit():
            self._conn.execute("DELETE FROM console_roles WHERE user_name = ?", (name,))
            self._conn.executemany("INSERT INTO console_roles (user_name, role, hall_id) VALUES (?, ?, ?)",
                                   [(name, role, hall) for role, hall in sorted(set(roles))])
            self._conn.execute("UPDATE console_users SET changed_at = ? WHERE name = ?", (at, name))
            self._conn.execute("DELETE FROM console_sessions WHERE user_name = ?", (name,))

    # -- sessions ---------------------------------------------------------------

    def add_session(self, id_hash: str, name: str, csrf: str, created_at: str, expires_at: str) -> None:
        """A new session; sessions already expired are swept in the same transaction."""
        with self._unit():
            self._conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (created_at,))
            self._conn.execute("INSERT INTO console_sessions (id_hash, user_name, csrf, created_at, expires_at) "
                               "VALUES (?, ?, ?, ?, ?)", (id_hash, name, csrf, created_at, expires_at))

    def session(self, id_hash: str, now: str) -> tuple[str, str] | None:
        """(account name, CSRF token) of a live session of an enabled account, or None."""
        return self._conn.execute(
            "SELECT s.user_name, s.csrf FROM console_sessions s JOIN console_users u ON u.name = s.user_name "
            "WHERE s.id_hash = ? AND s.expires_at > ? AND u.disabled = 0", (id_hash, now)).fetchone()

    def end_session(self, id_hash: str) -> None:
        """Forget a session (logout); nothing when there is none."""
        with self._unit():
            self._conn.execute("DELETE FROM console_sessions WHERE id_hash = ?", (id_hash,))

    # -- the audit log ----------------------------------------------------------

    def add_audit(self, at: str, actor: str, action: str, target: str, hall_id: str | None, address: str,
                  detail: str) -> None:
        """Append one entry to the audit log (in the caller's unit when there is one)."""
        with self._unit():
            self._conn.execute("INSERT INTO console_audit (at, actor, action, target, hall_id, address, detail) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", (at, actor, action, target, hall_id, address, detail))

    def audit_log(self, *, before_id: int | None = None, limit: int = 200) -> list[AuditEntry]:
        """The newest entries (before ``before_id`` when given), newest first."""
        rows: Iterator[tuple] = self._conn.execute(
            "SELECT id, at, actor, action, target, hall_id, address, detail FROM console_audit "
            "WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id if before_id is not None else 2**62, int(limit)))
        return [AuditEntry(*row) for row in rows]

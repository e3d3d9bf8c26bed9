"""Managing console accounts: what ``hcp users add|roles|disable|enable|reset|list`` do.

A role is given as ``ROLE:HALL`` (``manager:hall01``), or ``ROLE`` alone or
``ROLE:*`` for every hall (a supervisor's usual scope). Every change is in the
audit log, by ``cli:<os user>`` from ``local``, and ends the account's sessions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from hcp.collector.console.audit import Audit, local_actor
from hcp.collector.console.auth import ALL_HALLS, MIN_PASSWORD, ROLE_NAMES, hash_password
from hcp.collector.console.exc import AccountError
from hcp.collector.store import Store
from hcp.collector.store.accounts import Account
from hcp.domain import now_cst, utc_text
from hcp.protocol import IDENT_CHARS

_NAME = re.compile(r"[\w.@-]{1,64}")
_HALL = re.compile(f"[{IDENT_CHARS}]{{1,64}}")


def parse_roles(specs: Sequence[str]) -> list[tuple[str, str]]:
    """(role, hall id) pairs from ``ROLE[:HALL]`` texts; AccountError names a bad one."""
    pairs = []
    for spec in specs:
        role, _sep, hall = spec.strip().partition(":")
        if role not in ROLE_NAMES:
            raise AccountError(f"--role {spec!r}: unknown role {role!r}; expected one of {', '.join(ROLE_NAMES)}")
        hall = hall or ALL_HALLS
        if hall != ALL_HALLS and not _HALL.fullmatch(hall):
            raise AccountError(f"--role {spec!r}: hall {hall!r} is not 1-64 of A-Z a-z 0-9 . _ : -")
        pairs.append((role, hall))
    return pairs


def check_password(password: str) -> None:
    """Refuse a password too short or with a line break (a paste gone wrong)."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    if "\n" in password or "\r" in password:
        raise AccountError("password: must be one line")


class Accounts:
    """Account changes on one store, each audited."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = now_cst, actor: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.audit = Audit(store, clock)
        self.actor = actor or local_actor()

    def add(self, name: str, password: str, roles: Sequence[tuple[str, str]]) -> Account:
        """A new account with ``roles``; AccountError when the name is taken or bad."""
        if not _NAME.fullmatch(name):
            raise AccountError(f"name {name!r}: 1-64 letters, digits, . _ @ -")
        check_password(password)
        now = utc_text(self.clock())
        with self.store.unit():
            if self.store.account(name) is not None:
                raise AccountError(f"account {name} exists already (hcp users reset / roles change it)")
            self.store.add_account(name, hash_password(password), now)
            self.store.set_roles(name, roles, now)
            self.audit.record(self.actor, "user-add", name, detail=_roles_text(roles))
        return self.get(name)

    def set_roles(self, name: str, roles: Sequence[tuple[str, str]]) -> Account:
        """Replace the account's roles (ending its sessions)."""
        with self.store.unit():
            self.get(name)
            self.store.set_roles(name, roles, utc_text(self.clock()))
            self.audit.record(self.actor, "user-roles", name, detail=_roles_text(roles))
        return self.get(name)

    def set_disabled(self, name: str, disabled: bool) -> Account:
        """Disable (ending its sessions) or enable the account."""
        with self.store.unit():
            self.get(name)
            self.store.set_disabled(name, disabled, utc_text(self.clock()))
            self.audit.record(self.actor, "user-disable" if disabled else "user-enable", name)
        return self.get(name)

    def reset(self, name: str, password: str) -> Account:
        """A new password (ending the account's sessions)."""
        check_password(password)
        with self.store.unit():
            self.get(name)
            self.store.set_password_hash(name, hash_password(password), utc_text(self.clock()))
            self.audit.record(self.actor, "user-reset", name)
        return self.get(name)

    def get(self, name: str) -> Account:
        found = self.store.account(name)
        if found is None:
            raise AccountError(f"no account {name!r} (hcp users list shows them)")
        return found

    def all(self) -> list[Account]:
        return self.store.accounts()


def _roles_text(roles: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{role}:{hall}" for role, hall in sorted(roles)) or "(none)"

"""Who is logged in and what they may do: users and roles, passwords, sessions, login throttling.

The interface the console's pages (and the figures pages mounted beside them)
use is small and stable:

- ``request.state.user`` is a :class:`User` (or None when nobody is logged in),
  set for every request by :class:`hcp.collector.console.middleware.SessionMiddleware`;
- ``User.roles`` maps a role to the hall ids it covers (``"*"``: every hall);
  ``User.can(role_or_roles, hall_id)`` answers for one hall (``None``: any hall);
- :func:`require` raises ``HTTPException(403)``, or a 303 to ``/login`` when nobody is logged in.

Passwords are hashed with argon2id (argon2-cffi). A session id is 32 random
bytes in an HttpOnly, SameSite=Strict cookie; the database keeps only its
SHA-256, so a copy of the database opens no session. Each login makes a new
id (a session id planted before login is never accepted). Failed logins are
counted per client address and per account name (the limits package, moving
window): over the account's budget the account is locked until the window
frees, whatever the password.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.exceptions import HTTPException
from starlette.requests import Request

from hcp.collector.console.exc import LoginRefused
from hcp.collector.store.schema_console import ROLES

#: The roles and their names on screen.
ROLE_NAMES = {"manager": "大厅负责人", "followup": "回访整改", "reviewer": "申诉复核", "supervisor": "监督",
              "operator": "运维"}
assert tuple(ROLE_NAMES) == ROLES
#: The hall id standing for every hall.
ALL_HALLS = "*"
#: The session cookie and the login form's own cookie (its CSRF token before there is a session).
SESSION_COOKIE = "hcp_console"
LOGIN_COOKIE = "hcp_console_login"
#: The form field that carries the CSRF token on every POST.
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class User:
    """A logged-in account: its name, its roles by hall, and its session's CSRF token."""

    name: str
    roles: dict[str, frozenset[str]]
    csrf: str = field(default="", repr=False)

    def can(self, role_or_roles: str | Iterable[str], hall_id: str | None = None) -> bool:
        """Whether the user holds one of the roles for ``hall_id`` (None: for some hall)."""
        wanted = (role_or_roles,) if isinstance(role_or_roles, str) else tuple(role_or_roles)
        for role in wanted:
            halls = self.roles.get(role, frozenset())
            if halls and (hall_id is None or ALL_HALLS in halls or hall_id in halls):
                return True
        return False

    def halls(self, role_or_roles: str | Iterable[str]) -> frozenset[str] | None:
        """The halls where the user holds one of the roles; None means every hall."""
        wanted = (role_or_roles,) if isinstance(role_or_roles, str) else tuple(role_or_roles)
        found: set[str] = set()
        for role in wanted:
            found |= self.roles.get(role, frozenset())
        return None if ALL_HALLS in found else frozenset(found)

    @classmethod
    def from_pairs(cls, name: str, pairs: Iterable[tuple[str, str]], csrf: str = "") -> User:
        """A user from stored (role, hall id) pairs."""
        roles: dict[str, set[str]] = {}
        for role, hall in pairs:
            roles.setdefault(role, set()).add(hall)
        return cls(name, {role: frozenset(halls) for role, halls in roles.items()}, csrf)


def current_user(request: Request) -> User | None:
    """The logged-in user of a request, or None."""
    return getattr(request.state, "user", None)


def require(request: Request, roles: str | Iterable[str], hall_id: str | None = None) -> None:
    """Refuse the request unless its user holds one of ``roles`` for ``hall_id`` (None: for some hall).

    Not logged in: a 303 to /login (coming back here after). Logged in without the role: 403.
    """
    user = current_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/login?next={quote(target, safe='')}"})
    if not user.can(roles, hall_id):
        raise HTTPException(403, "无权访问：您的角色或所辖大厅不包括此项。")


# -- passwords -----------------------------------------------------------------------

_HASHER = PasswordHasher()  # argon2id with the library's current recommended cost
#: Verified against when the account does not exist, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of a password."""
    return _HASHER.hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches the stored hash; None (no such account) takes as long and is False."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash was made with older parameters than the hasher's."""
    return _HASHER.check_needs_rehash(stored_hash)


# -- session ids -------------------------------------------------------------------

def new_token() -> str:
    """A fresh random token (a session id or a CSRF token): 32 bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def id_hash(session_id: str) -> str:
    """What the database keeps of a session id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of a token from a form with the one expected (both non-empty)."""
    return bool(given) and bool(expected) and secrets.compare_digest(given.encode(), expected.encode())


# -- login throttling ----------------------------------------------------------------

class LoginGuard:
    """Failed logins counted per client address and per account name; over either budget, refuse for a while."""

    def __init__(self, per_address: str = "20/minute", per_account: str = "5/15 minutes") -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rates = {"address": parse_many(per_address), "account": parse_many(per_account)}
        self._lock = threading.Lock()

    def check(self, address: str, account: str) -> None:
        """Raise LoginRefused while the address or the account is over its budget of failures."""
        for kind, key in (("account", account), ("address", address)):
            for rate in self._rates[kind]:
                if not self._limiter.test(rate, kind, key):
                    wait = self._wait_s(rate, kind, key)
                    what = "该账号登录失败次数过多，已临时锁定" if kind == "account" else "登录尝试过于频繁"
                    raise LoginRefused(f"{what}，请{max(1, round(wait / 60))}分钟后再试。", wait)

    def failed(self, address: str, account: str) -> None:
        """Count one failure against the address and the account."""
        with self._lock:
            for kind, key in (("account", account), ("address", address)):
                for rate in self._rates[kind]:
                    self._limiter.hit(rate, kind, key)

    def locked(self, account: str) -> bool:
        """Whether the account is locked now (its budget of failures is used up)."""
        return any(not self._limiter.test(rate, "account", account) for rate in self._rates["account"])

    def _wait_s(self, rate, kind: str, key: str) -> float:
        return max(1.0, self._limiter.get_window_stats(rate, kind, key).reset_time - time.time())

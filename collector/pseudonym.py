"""Keyed pseudonyms for raters: real-name rating, private rater.

The collector must tell whether two ratings come from the same person (a hall
is rated once per person per day) without holding who that person is. An
HMAC-SHA256 of the applicant id under a secret key kept outside the database
does that: equal ids give equal pseudonyms, and a copy of the database alone
cannot be turned back into ids, not even by hashing guessed ids.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from hcp.collector.exc import SecretKeyError

KEY_BYTES = 32


def load_or_create_key(path: Path | str) -> bytes:
    """The key in ``path``; a new random key (file mode 0600) when the file is missing."""
    path = Path(path)
    if not path.exists():
        _create_key(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise SecretKeyError(f"{path}: cannot read the pseudonym key ({err})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretKeyError(f"{path}: pseudonym key readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SecretKeyError(f"{path}: pseudonym key is not hex text") from None
    if len(key) < KEY_BYTES:
        raise SecretKeyError(f"{path}: pseudonym key has {len(key)} bytes, expected at least {KEY_BYTES}")
    return key


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two collectors starting together must not each write a key and
    # leave pseudonyms made under the loser's key unmatchable.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(KEY_BYTES) + "\n")
        out.flush()
        os.fsync(out.fileno())


class Pseudonymizer:
    """Turns applicant ids into pseudonyms under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise SecretKeyError(f"pseudonym key has {len(key)} bytes, expected at least {KEY_BYTES}")
        self._key = key

    def __call__(self, applicant_id: str | None) -> str | None:
        """The pseudonym of ``applicant_id`` (hex), or None when there is no id."""
        if applicant_id is None:
            return None
        return hmac.new(self._key, applicant_id.encode(), hashlib.sha256).hexdigest()

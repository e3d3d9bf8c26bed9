"""The hash chain as the :class:`~hcp.collector.store.Store` offers it: sign, verify, list and export heads.

The chain itself (sealing, canonical rows, the checks) is
``hcp.collector.store.chain``; these are the named methods the service, the
lifecycle and the CLI call instead of passing the store's connection to it.
Sealing is not here: every commit of :meth:`Store.batch` does it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from hcp.collector.exc import DatabaseError, StoreError
from hcp.collector.store import chain
from hcp.collector.store.chain import Head, Problem
from hcp.collector.store.errors import database_errors
from hcp.domain import now_cst

if TYPE_CHECKING:
    from hcp.collector.store.engine import Engine

log = logging.getLogger("hcp.collector.store")


class ChainQueries:
    """The chain's methods of the Store (a mixin: it uses the Store's connection, key and ``_unit``)."""

    _conn: Engine
    _key: bytes
    _unsigned: bool
    exclusive: Callable[[str], AbstractContextManager[bool]]
    #: Where signed chain heads are appended, outside the database (``chain.heads_file``).
    heads_file: Path | None

    def sign_head(self, now: datetime) -> Head | None:
        """Sign the chain head, store it and append it to the heads file; None when nothing new to sign.

        Raises StoreError when the database fails, OSError when the heads file does.
        """
        with _database_errors("cannot sign the chain head"), self.exclusive("chain-head") as mine:
            # Another collector signing now (PostgreSQL) signs the same chain: nothing for this one to add.
            head = chain.sign_head(self._conn, self._key, now) if mine else None
        self._unsigned = False
        if head is not None and self.heads_file is not None:
            chain.append_head(self.heads_file, head)
        return head

    def _sign_quietly(self) -> None:
        """Sign what this store sealed (on a clean close, after a migration), logging a failure.

        Only what it sealed: a store opened to read (``hcp verify``) must not
        sign over heads an intruder deleted.
        """
        if self._conn.in_transaction:
            return  # closing in the middle of a failed transaction: it is rolled back, nothing to sign
        try:
            self.sign_head(now_cst())
        except (StoreError, OSError) as err:
            log.error("could not sign the chain head on closing: %s", err)

    @property
    def chain_public_key(self) -> str:
        """The public key (hex) of this store's head-signing key: what its heads must be signed with."""
        return chain.public_hex(chain.signing_key(self._key))

    def verify_chain(self, trusted: Iterable[Head] = (), *, public_key: str | None = None) -> list[Problem]:
        """Every disagreement between the schema, the records, the chain and the heads (stored and ``trusted``).

        ``public_key``: also report heads signed by another key than this one.
        """
        with _database_errors("cannot verify the chain"):
            return chain.verify(self._conn, trusted=list(trusted), public_key=public_key)

    def heads(self) -> list[Head]:
        """Every signed head stored in the database, oldest first."""
        with _database_errors("cannot read the signed heads"):
            return chain.heads(self._conn)

    def export_heads(self, out: TextIO) -> int:
        """Write every stored signed head to ``out`` as JSON lines, oldest first; returns how many."""
        heads = self.heads()
        out.writelines(chain.head_json(head) + "\n" for head in heads)
        return len(heads)


@contextmanager
def _database_errors(doing: str) -> Iterator[None]:
    """Translate the database's errors into StoreError (its DatabaseError kind), saying what could not be done."""
    try:
        with database_errors():  # also what a unit inside translated already
            yield
    except DatabaseError as err:
        raise type(err)(f"{doing}: the database says {err}") from err

"""The rater's identity for real-name upstream presets: sealed at rest, opened only to send, erased after.

Real-name platforms want the applicant's certificate number and name with
each rating (``certKey``, ``userName``), while the collector otherwise keeps
only a keyed pseudonym. Where the preset needs them they are kept here:
AES-GCM under a key of their own (derived from the collector key, apart from
the contacts' key), bound to the case id; read only by the forwarder while it
builds a signed request; never exported, chained or logged; deleted once the
platform has answered on the case's rating and the preset's retention has
passed, or ``max_days`` after the case arrived when it is never rated (a failed
intake, a policy without default ratings). Presets that do not need them
never store them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hcp.collector.store import Store
from hcp.domain import utc_text
from hcp.protocol import CaseRecord, CaseResult


@dataclass(frozen=True)
class Identity:
    """A rater's certificate number and name, as the platform wants them."""

    cert: str
    name: str

    def __repr__(self) -> str:  # never in a log or a traceback
        return "Identity(<sealed>)"


class Identities:
    """Sealed rater identities by case, over one store's connection."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cipher = AESGCM(store.sealing_key("hcp-rater-identity"))

    def keep(self, cases: Sequence[CaseRecord], results: Sequence[CaseResult], now: datetime) -> int:
        """Seal the identity of every case just stored that carries a certificate number and a name."""
        stored = {r.case_id for r in results if r.outcome == "stored"}
        rows = [(c.case_id, self._seal(c.case_id, Identity(c.applicant_id, c.applicant_name)), utc_text(now))
                for c in cases if c.case_id in stored and c.applicant_id and c.applicant_name]
        return self.store.keep_sealed_identities(rows)

    def get(self, case_id: str) -> Identity | None:
        """The identity kept for ``case_id``, or None (also when it does not decrypt)."""
        sealed = self.store.sealed_identity(case_id)
        if sealed is None:
            return None
        try:
            data = json.loads(self._cipher.decrypt(sealed[:12], sealed[12:], case_id.encode()))
        except InvalidTag:
            return None
        return Identity(data["cert"], data["name"])

    def finished(self, case_ids: Sequence[str], done_at: datetime, retention: timedelta) -> None:
        """The platform's answer on the rating of ``case_ids`` is final: erase their identities after retention."""
        self.store.schedule_identity_erasure([(utc_text(done_at + retention), c) for c in case_ids])

    def erase_due(self, now: datetime, max_age: timedelta) -> int:
        """Delete the identities whose retention has passed, and those kept longer than ``max_age``; how many."""
        return self.store.erase_identities(utc_text(now), utc_text(now - max_age))

    def _seal(self, case_id: str, identity: Identity) -> bytes:
        nonce = os.urandom(12)
        text = json.dumps({"cert": identity.cert, "name": identity.name}, ensure_ascii=False).encode()
        return nonce + self._cipher.encrypt(nonce, text, case_id.encode())

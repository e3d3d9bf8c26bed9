"""Ratings from the channels other than the window: the phone page (qr), paper forms and the 12345 hotline.

They go through the same rules as a terminal's rating (:func:`hcp.collector.rules.judge`)
and the same claims, so a service is rated once whatever the channel. Each
call is one ``BEGIN IMMEDIATE`` transaction on the caller's own connection:
the verdict is read and the claims written under SQLite's write lock, so a
collector's MQTT worker (another connection, same file, WAL) and this code
never both win a unit; the loser's claim finds the key taken.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hcp.collector.rules import CaseRow, judge, last_rating_day, service_keys
from hcp.collector.store import DEFAULT_PREFIX, Store
from hcp.collector.store.channels import ChannelRating
from hcp.domain import Channel, Intake, Kind, Outcome, china_date

#: Channels an operator or the phone page may enter; the window and defaults have their own paths.
ENTRY_CHANNELS = (Channel.QR, Channel.PAPER, Channel.HOTLINE, Channel.SMS, Channel.APP, Channel.WEB,
                  Channel.KIOSK)
MAX_TEXT = 500
_REF = re.compile(r"[A-Za-z0-9._-]{1,48}")
_PHONE = re.compile(r"\+?[0-9]{6,15}")


@dataclass(frozen=True)
class Entry:
    """One rating entered through a channel: who is rated (the case), how, and what was said."""

    case_id: str
    score: int
    channel: Channel
    rated_at: datetime
    reasons: tuple[str, ...] = ()
    text: str = ""
    kind: Kind = Kind.SERVICE
    ref: str = ""  # a form number or call id: entering it again is answered as the first time


@dataclass(frozen=True)
class EntryResult:
    """What became of an entry: its rating id (if stored), outcome and reason."""

    rating_id: str
    outcome: Outcome | str
    reason: str = ""
    stored: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class CaseState:
    """Whether a case may be rated now, for the phone page; ``state`` is one of STATES."""

    state: str
    case: CaseRow | None = None
    last_day: str | None = None


STATES = ("open", "unknown", "failed-intake", "rated", "defaulted", "period-ended")


class Channels:
    """Entering ratings through the non-window channels into one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.profile = store.profile

    # -- reading -------------------------------------------------------------

    def case_state(self, case_id: str, now: datetime) -> CaseState:
        """Whether ``case_id`` may be rated at ``now``, and its record."""
        row = self.store.cases([case_id]).get(case_id)
        if row is None:
            return CaseState("unknown")
        last = last_rating_day(row.completed_at, self.profile)
        last_day = last.isoformat() if last else None
        if row.intake == Intake.FAILED.value and not self.profile.failed_intake_ratable:
            return CaseState("failed-intake", row, last_day)
        claimed = self.store.claims(service_keys([row], self.profile))
        if any(rid.startswith(DEFAULT_PREFIX) for rid in claimed.values()):
            return CaseState("defaulted", row, last_day)
        if claimed:
            return CaseState("rated", row, last_day)
        if last is not None and china_date(now) > last:
            return CaseState("period-ended", row, last_day)
        return CaseState("open", row, last_day)

    # -- writing -------------------------------------------------------------

    def enter(self, entry: Entry, received_at: datetime) -> EntryResult:
        """Store ``entry`` under the one-rating rules; a problem is an answer, never an exception."""
        rating_id = self._rating_id(entry)
        problem = self._entry_problem(entry, received_at)
        if problem:
            return EntryResult(rating_id, Outcome.REJECTED, problem, stored=False)
        with self.store.unit():
            seen = self.store.stored_answers([rating_id]).get(rating_id)
            if seen is not None:
                return EntryResult(rating_id, seen[1], f"entered before: {seen[2]}".rstrip(": "))
            return self._enter(rating_id, entry, received_at)

    def _enter(self, rating_id: str, entry: Entry, received_at: datetime) -> EntryResult:
        cases = self.store.cases([entry.case_id])
        case = cases.get(entry.case_id)
        if case is None:
            return EntryResult(rating_id, Outcome.REJECTED, f"case {entry.case_id}: no such case record at this "
                               "collector (yet); enter the rating once the case has arrived", stored=False)
        day = china_date(entry.rated_at)
        verdict = judge(entry.kind.value, (entry.case_id,), day, f"channel:{entry.channel.value}", case.hall_id,
                        cases, self.profile)
        outcome, reason = self.store.insert_channel_rating(
            ChannelRating(rating_id, entry.channel, entry.kind, case, entry.score, entry.rated_at, received_at, day,
                          entry.reasons, entry.text), verdict)
        return EntryResult(rating_id, outcome, reason)

    def _entry_problem(self, entry: Entry, received_at: datetime) -> str:
        if entry.channel not in ENTRY_CHANNELS:
            return f"channel: {entry.channel.value} is not entered by hand; expected one of " + \
                ", ".join(c.value for c in ENTRY_CHANNELS)
        if entry.score not in range(1, 6):
            return f"score: {entry.score} is not 1-5"
        if entry.rated_at.tzinfo is None:
            return "rated_at: needs a time zone (e.g. +08:00)"
        if entry.rated_at > received_at + timedelta(minutes=5):
            return f"rated_at: {entry.rated_at.isoformat()} is in the future"
        if entry.ref and not _REF.fullmatch(entry.ref):
            return f"ref: {entry.ref!r} is not 1-48 of A-Z a-z 0-9 . _ -"
        if len(entry.text) > MAX_TEXT:
            return f"text: {len(entry.text)} characters; at most {MAX_TEXT}"
        return self._reasons_problem(entry)

    def _reasons_problem(self, entry: Entry) -> str:
        unknown = [r for r in entry.reasons if r not in self.profile.dimensions]
        if unknown:
            return f"reasons: {', '.join(unknown)} not among policy {self.profile.name}'s " \
                f"({', '.join(self.profile.dimensions) or 'none'})"
        if entry.kind == Kind.SERVICE and self.profile.is_bad(entry.score) and not entry.reasons \
                and not entry.text.strip():
            return "a 差评 must carry a reason or a text (national interface rule)"
        return ""

    @staticmethod
    def _rating_id(entry: Entry) -> str:
        if entry.ref:
            return f"{entry.channel.value}:{entry.kind.value}:{entry.ref}"
        return f"{entry.channel.value}:{uuid.uuid4()}"


# -- applicant contacts (for the reminder) -----------------------------------------


class Contacts:
    """Applicants' phone numbers, sealed under the collector key; read only to send a reminder."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cipher = AESGCM(store.sealing_key("hcp-case-contact"))

    def add(self, case_id: str, phone: str) -> bool:
        """Keep ``phone`` for ``case_id``; False when the case already has one (kept unchanged)."""
        phone = phone.strip().replace(" ", "").replace("-", "")
        if not _PHONE.fullmatch(phone):
            raise ValueError("phone: expected 6-15 digits, optionally after +")
        nonce = os.urandom(12)
        sealed = nonce + self._cipher.encrypt(nonce, phone.encode(), case_id.encode())
        return self.store.insert_contact(case_id, sealed)

    def phone(self, case_id: str) -> str | None:
        """The phone number kept for ``case_id``, or None (also when it does not decrypt)."""
        sealed = self.store.sealed_contact(case_id)
        if sealed is None:
            return None
        try:
            return self._cipher.decrypt(sealed[:12], sealed[12:], case_id.encode()).decode()
        except InvalidTag:
            return None


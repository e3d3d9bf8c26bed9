"""The storage layer's side of the non-window channels: their ratings, the applicants' contacts, case state.

:mod:`hcp.collector.channels` checks an entry and judges it under the rules;
here it is written under the same unit claims as a terminal's rating, so a
service is rated once whatever the channel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from hcp.collector.rules import CaseRow, Verdict
from hcp.domain import Channel, Kind, Outcome, utc_text

if TYPE_CHECKING:
    from hcp.collector.store.engine import Engine


@dataclass(frozen=True)
class ChannelRating:
    """One rating entered through a channel, as stored: the case it rates and its China day."""

    rating_id: str
    channel: Channel
    kind: Kind
    case: CaseRow
    score: int
    rated_at: datetime
    received_at: datetime
    day: date
    reasons: tuple[str, ...] = ()
    text: str = ""


class ChannelQueries:
    """Public reads and writes of the :class:`~hcp.collector.store.Store` for channels and the phone page.

    A mixin of the Store: ``unit``, ``claims``, ``_answers`` and ``_write_claims`` are core's, shared with a
    terminal's ratings; ``open_followups`` is the lifecycle's.
    """

    _conn: Engine

    def stored_answers(self, rating_ids: Iterable[str]) -> dict[str, tuple[str, str, str]]:
        """rating_id → (device_id, first outcome, first reason) for those already stored."""
        return self._answers(rating_ids)

    def insert_channel_rating(self, rating: ChannelRating, verdict: Verdict) -> tuple[Outcome, str]:
        """Store ``rating`` with the outcome its verdict and the unit claims give it; returns (outcome, reason).

        An accepted 差评 opens its follow-up, as a terminal's does.
        """
        from hcp.collector.store.core import _Claimer  # core builds the Store from this mixin

        with self.unit():
            claimer = _Claimer(self.claims(verdict.keys))
            outcome, reason = claimer.decide(rating.rating_id, verdict)
            self._insert_rating(rating, outcome, reason)
            self._write_claims(claimer.new)
            if outcome == Outcome.ACCEPTED:
                self.open_followups([rating.rating_id], rating.received_at)
        return outcome, reason

    def _insert_rating(self, rating: ChannelRating, outcome: Outcome, reason: str) -> None:
        case, channel = rating.case, rating.channel.value
        self._conn.execute(
            "INSERT INTO ratings (rating_id, device_id, seq, kind, channel, case_ids, score, rated_at, clock_synced, "
            "received_at, day, reasons, prompt_id, hall_id, window_id, clerk_id, item_code, ack_outcome, ack_reason) "
            "VALUES (?, ?, 0, ?, ?, ?, ?, ?, 1, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            (rating.rating_id, f"channel:{channel}", rating.kind.value, channel, json.dumps([case.case_id]),
             rating.score, utc_text(rating.rated_at), utc_text(rating.received_at), rating.day.isoformat(),
             json.dumps(list(rating.reasons), ensure_ascii=False), case.hall_id, case.window_id, case.clerk_id,
             case.item_code, outcome.value, reason))
        if rating.text.strip():
            self._conn.execute("INSERT INTO rating_texts (rating_id, text) VALUES (?, ?)",
                               (rating.rating_id, rating.text.strip()))

    # -- applicants' contacts ------------------------------------------------------

    def insert_contact(self, case_id: str, sealed: bytes) -> bool:
        """Keep a case's sealed phone number; False when the case already has one (kept unchanged)."""
        with self.unit():
            cursor = self._conn.execute("INSERT INTO case_contacts (case_id, sealed) VALUES (?, ?) "
                                        "ON CONFLICT DO NOTHING", (case_id, sealed))
            added = cursor.rowcount == 1
        return added

    def sealed_contact(self, case_id: str) -> bytes | None:
        """The sealed phone number kept for ``case_id``, or None."""
        row = self._conn.execute("SELECT sealed FROM case_contacts WHERE case_id = ?", (case_id,)).fetchone()
        return None if row is None else bytes(row[0])

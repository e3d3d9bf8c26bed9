"""The policy lifecycle around a stored rating: defaults, follow-ups, appeals, exclusions.

Every method is one transaction on the store and writes new records only
(the schema's triggers forbid anything else). Each refuses, with a reason,
an action the record's state or the profile does not allow. Times are passed
in (``at``/``now``) so tests and late paper records state them.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hcp.collector.exc import NotFound, Refused
from hcp.collector.followup import STEPS, FollowUp, step_problem
from hcp.collector.rules import service_keys
from hcp.collector.store import DEFAULT_PREFIX, Store
from hcp.collector.store.chain import Head, Problem
from hcp.collector.store.lifecycle import Appeal, DueCase
from hcp.collector.workdays import day_start
from hcp.domain import Channel, Level, china_date, utc_text

#: Cases read per transaction by the default job, so a collector's worker is never blocked long.
_DEFAULT_CHUNK = 5000
EXCLUSION_KINDS = ("invalid", "malicious")


@dataclass(frozen=True)
class DefaultRun:
    """What one run of the default job did."""

    defaulted: int
    cutoff: str  # cases completed before this instant were due


class Lifecycle:
    """The lifecycle actions on one store, under its profile and calendar."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.profile = store.profile

    # -- the default rating -------------------------------------------------

    def run_defaults(self, now: datetime, *, dry_run: bool = False) -> DefaultRun:
        """Give every case past its rating period, with no rating, the profile's default level; once.

        ``dry_run``: count what would be defaulted and write nothing.
        """
        days = self.profile.default_after_days
        if days is None:
            return DefaultRun(0, "")
        # A case completed on day D may be rated through D + days; it is due
        # from midnight opening D + days + 1, i.e. completed before today - days.
        cutoff = _ts(day_start(china_date(now) - timedelta(days=days)))
        total, after = 0, ""
        while True:
            # Several collectors run this job: each chunk is one run of it (docs/scaling.md), and the
            # unit claims it writes make a default happen once whoever runs it.
            with self.store.exclusive("defaults") as mine:
                if not mine:  # another collector is at it (PostgreSQL): it does the rest
                    return DefaultRun(total, cutoff)
                made, after = self._default_chunk(cutoff, after, now, write=not dry_run)
            total += made
            if not after:
                return DefaultRun(total, cutoff)

    def _default_chunk(self, cutoff: str, after: str, now: datetime, *, write: bool = True) -> tuple[int, str]:
        rows = self.store.unrated_cases(cutoff, after=after, limit=_DEFAULT_CHUNK,
                                        failed_ok=self.profile.failed_intake_ratable)
        units: dict[str, list[DueCase]] = defaultdict(list)
        for row in rows:
            units[self._unit_key(row)].append(row)
        taken = self.store.claims(units)
        made = [self._default_rating(key, cases, now) for key, cases in units.items() if key not in taken]
        if write:
            self._write_defaults(made)
        return len(made), (rows[-1][0] if len(rows) == _DEFAULT_CHUNK else "")

    def _unit_key(self, row: DueCase) -> str:
        case_id, batch_id = row[0], row[1]
        return _one(service_keys([_KeyRow(case_id, batch_id)], self.profile))  # type: ignore[list-item]

    def _default_rating(self, key: str, cases: list[DueCase], now: datetime) -> tuple:
        _case, _batch, hall, window, item, clerk, _completed = cases[0]
        last = max(c[6] for c in cases)
        assert self.profile.default_after_days is not None and self.profile.default_level is not None
        due = day_start(china_date(datetime.fromisoformat(last)) + timedelta(days=self.profile.default_after_days + 1))
        level = Level(self.profile.default_level)
        reason = (f"no rating within {self.profile.default_after_days} natural days of completion: "
                  f"default {level.label} under policy {self.profile.name}")
        return (DEFAULT_PREFIX + key, "system", 0, "service", Channel.SYSTEM_DEFAULT.value,
                json.dumps(sorted(c[0] for c in cases)), level.value, _ts(due), 1, _ts(now), due.date().isoformat(),
                "[]", None, hall, window, clerk, item, "accepted", reason, key)

    def _write_defaults(self, made: list[tuple]) -> None:
        # Each row ends with its unit key: the claim that makes the default happen once.
        self.store.insert_default_ratings([row[:-1] for row in made], [(row[-1], row[0]) for row in made])

    # -- follow-ups ---------------------------------------------------------

    def followups(self, *, now: datetime, overdue_only: bool = False, state: str | None = None) -> list[FollowUp]:
        """Follow-ups by id; only those overdue at ``now``, or in ``state``, when asked."""
        found = self.store.followups()
        if state:
            found = [f for f in found if f.state == state]
        return [f for f in found if f.overdue(now)] if overdue_only else found

    def followup(self, followup_id: int) -> FollowUp:
        """One follow-up; NotFound when there is none."""
        found = self.store.followup(followup_id)
        if found is None:
            raise NotFound(f"no follow-up {followup_id}")
        return found

    def step(self, followup_id: int, action: str, *, actor: str, note: str, at: datetime) -> FollowUp:
        """Record a step (contact, rectify, explain, close, spot-check) that the current state allows."""
        _need(actor, "--by: name who did it")
        with self.store.unit():
            current = self.followup(followup_id)
            problem = step_problem(action, current.state, followup_id, current.spot_check)
            if problem:
                raise Refused(problem)
            if action in ("rectify", "explain") and not note.strip():
                raise Refused(f"{action}: --note must say what was done")
            if _ts(at) < current.rated_at:
                raise Refused(f"--at {at.isoformat()} is before the 差评 itself")
            self.store.insert_followup_event(followup_id, action, STEPS[action][1], actor, _ts(at), note)
        return self.followup(followup_id)

    def set_contact(self, followup_id: int, contact: str) -> None:
        """Keep the rater's contact for the follow-up staff, encrypted; once per follow-up."""
        _need(contact, "contact: empty")
        with self.store.unit():
            self.followup(followup_id)
            if self.store.has_followup_contact(followup_id):
                raise Refused(f"follow-up {followup_id} already has a contact (records are never edited)")
            nonce = os.urandom(12)
            sealed = nonce + self._cipher().encrypt(nonce, contact.encode(), str(followup_id).encode())
            self.store.insert_followup_contact(followup_id, sealed)

    def contact(self, followup_id: int) -> str | None:
        """The rater's contact for the follow-up role, or None; never logged or exported."""
        sealed = self.store.followup_contact(followup_id)
        if sealed is None:
            return None
        try:
            return self._cipher().decrypt(sealed[:12], sealed[12:], str(followup_id).encode()).decode()
        except InvalidTag:
            raise Refused(f"follow-up {followup_id}: the contact does not decrypt under this collector's key") from None

    def _cipher(self) -> AESGCM:
        return AESGCM(self.store.sealing_key("hcp-contact"))

    # -- appeals ------------------------------------------------------------

    def file_appeal(self, rating_id: str, *, filed_by: str, evidence: str, at: datetime) -> Appeal:
        """The rated unit appeals a 差评, with evidence, within the profile's window."""
        _need(filed_by, "--by: name the unit that appeals")
        _need(evidence, "--evidence: an appeal needs evidence")
        if not self.profile.appeals:
            raise Refused(f"policy {self.profile.name} has no appeal procedure (申诉复核)")
        with self.store.unit():
            rated_at = self._appealable(rating_id)
            window = self.profile.appeal_window
            if window is not None:
                end = self.store.calendar.due(datetime.fromisoformat(rated_at), window)
                if at >= end:
                    raise Refused(f"rating {rating_id}: the appeal window ({window.describe()}) closed at "
                                  f"{end.isoformat()}; filed {at.isoformat()}")
            review = self.profile.appeal_review
            due = _ts(self.store.calendar.due(at, review)) if review else None
            appeal_id = self.store.insert_appeal(rating_id, filed_by, _ts(at), evidence, due)
        return self.appeal(appeal_id)

    def _appealable(self, rating_id: str) -> str:
        row = self.store.rating_for_appeal(rating_id)
        if row is None:
            raise NotFound(f"no rating {rating_id}")
        score, channel, rated_at, synced, received_at, outcome = row
        if outcome != "accepted" or channel == Channel.SYSTEM_DEFAULT.value or not self.profile.is_bad(score):
            raise Refused(f"rating {rating_id}: only an accepted 差评 by a person can be appealed")
        self._not_excluded(rating_id)
        if self.store.appeal_waiting(rating_id):
            raise Refused(f"rating {rating_id}: an appeal is already waiting for review")
        return rated_at if synced else received_at

    def decide_appeal(self, appeal_id: int, *, upheld: bool, kind: str | None, reviewer: str, reason: str,
                      at: datetime) -> Appeal:
        """The reviewer's decision; an upheld appeal excludes the rating as ``kind`` (invalid or malicious)."""
        _need(reviewer, "--by: name the reviewer")
        _need(reason, "--reason: say why")
        if upheld and kind not in EXCLUSION_KINDS:
            raise Refused(f"--as: an upheld appeal marks the rating {' or '.join(EXCLUSION_KINDS)}")
        with self.store.unit():
            appeal = self.appeal(appeal_id)
            if appeal.decided_at is not None:
                raise Refused(f"appeal {appeal_id} was already decided on {appeal.decided_at}")
            if reviewer == appeal.filed_by:
                raise Refused(f"appeal {appeal_id}: the unit that filed it cannot review it")
            if _ts(at) < appeal.filed_at:
                raise Refused(f"--at {at.isoformat()} is before the appeal was filed")
            self.store.insert_appeal_decision(appeal_id, upheld, reviewer, _ts(at), reason)
            if upheld:
                self._insert_exclusion(appeal.rating_id, kind or "", reviewer, at,
                                       f"appeal {appeal_id} upheld: {reason}", appeal_id)
        return self.appeal(appeal_id)

    def appeal(self, appeal_id: int) -> Appeal:
        found = self.store.appeal(appeal_id)
        if found is None:
            raise NotFound(f"no appeal {appeal_id}")
        return found

    def appeals(self) -> list[Appeal]:
        return self.store.appeals()

    # -- exclusions ---------------------------------------------------------

    def exclude(self, rating_id: str, kind: str, *, decided_by: str, reason: str, at: datetime,
                raised_by_rater: bool = False) -> None:
        """Keep a rating but leave it out of statistics: invalid (the rater asked) or a malicious 差评."""
        _need(decided_by, "--by: name who decided")
        _need(reason, "--reason: say why")
        if kind not in EXCLUSION_KINDS:
            raise Refused(f"--as: expected one of {', '.join(EXCLUSION_KINDS)}, got {kind!r}")
        if kind == "invalid" and not raised_by_rater:
            raise Refused("an invalid rating is raised by the rater: confirm with --raised-by-rater")
        with self.store.unit():
            row = self.store.rating_score_and_channel(rating_id)
            if row is None:
                raise NotFound(f"no rating {rating_id}")
            if row[1] == Channel.SYSTEM_DEFAULT.value:
                raise Refused(f"rating {rating_id} is a default rating: it has no rater to exclude")
            if kind == "malicious" and not self.profile.is_bad(row[0]):
                raise Refused(f"rating {rating_id} is not a 差评: only a 差评 can be malicious")
            self._insert_exclusion(rating_id, kind, decided_by, at, reason, None)

    def _insert_exclusion(self, rating_id: str, kind: str, by: str, at: datetime, reason: str,
                          appeal_id: int | None) -> None:
        self._not_excluded(rating_id)
        self.store.insert_exclusion(rating_id, kind, by, _ts(at), reason, appeal_id)

    def _not_excluded(self, rating_id: str) -> None:
        row = self.store.exclusion(rating_id)
        if row and self._reversed(rating_id):
            # One exclusion per rating (the records reference it): a reversed one stays the rating's last word.
            raise Refused(f"rating {rating_id} was excluded as {row[0]} on {row[2]} and that was reversed; "
                          "it cannot be excluded again")
        if row:
            raise Refused(f"rating {rating_id} is already excluded as {row[0]} by {row[1]} on {row[2]}")

    def _reversed(self, rating_id: str) -> bool:
        state = self.store.exclusion_state(rating_id)
        return state is not None and state[3]

    def reverse_exclusion(self, rating_id: str, *, decided_by: str, reason: str, at: datetime) -> None:
        """Count an excluded rating again: a reversal record referencing the exclusion, which is kept unchanged."""
        _need(decided_by, "--by: name who decided")
        _need(reason, "--reason: say why")
        with self.store.unit():
            state = self.store.exclusion_state(rating_id)
            if state is None:
                raise NotFound(f"rating {rating_id} is not excluded")
            exclusion_id, kind, decided_at, reversed_ = state
            if reversed_:
                raise Refused(f"rating {rating_id}: its exclusion as {kind} was already reversed")
            if _ts(at) < decided_at:
                raise Refused(f"--at {at.isoformat()} is before the exclusion ({decided_at})")
            self.store.insert_exclusion_reversal(exclusion_id, rating_id, decided_by, _ts(at), reason)

    # -- the malicious raters' list ----------------------------------------

    def list_malicious(self, applicant_id: str, *, actor: str, reason: str, at: datetime) -> str:
        """Put a person on the list (by pseudonym at once); returns the pseudonym's short reference."""
        return self._malicious(applicant_id, "add", actor, reason, at)

    def unlist_malicious(self, applicant_id: str, *, actor: str, reason: str, at: datetime) -> str:
        """Take a person off the list; their ratings count again."""
        return self._malicious(applicant_id, "remove", actor, reason, at)

    def _malicious(self, applicant_id: str, action: str, actor: str, reason: str, at: datetime) -> str:
        _need(applicant_id, "applicant id: empty")
        _need(actor, "--by: name who decided")
        _need(reason, "--reason: say why")
        key = self.store.rater_key(applicant_id)
        with self.store.unit():
            listed = self.store.rater_listed(key)
            if listed == (action == "add"):
                raise Refused(f"rater {key[:12]} is {'already' if listed else 'not'} on the malicious raters' list")
            self.store.insert_malicious_change(key, action, actor, _ts(at), reason)
        return key[:12]

    def malicious_list(self) -> list[tuple[str, str, str, str]]:
        """(pseudonym reference, who, when, why) of each person now on the list."""
        return [(key[:12], actor, at, reason) for key, actor, at, reason in self.store.malicious_raters()]

    # -- reminders ----------------------------------------------------------

    def reminders_due(self, now: datetime) -> list[str]:
        """Case ids still unrated past the profile's reminder time and not yet defaulted."""
        hours = self.profile.reminder_after_hours
        if hours is None:
            return []
        rows = self.store.unrated_cases(_ts(now - timedelta(hours=hours)), failed_ok=self.profile.failed_intake_ratable)
        keyed = [(row[0], self._unit_key(row)) for row in rows]
        taken = self.store.claims({key for _case, key in keyed})
        return [case_id for case_id, key in keyed if key not in taken]

    # -- tamper evidence ----------------------------------------------------

    def sign_head(self, now: datetime) -> Head | None:
        """Sign the chain head, store it and append it to the heads file (the collector does this periodically)."""
        return self.store.sign_head(now)

    def verify(self, trusted: list[Head] = ()) -> list[Problem]:
        """Every place the records, the chain and the signed heads disagree; heads must carry the store's key."""
        return self.store.verify_chain(trusted, public_key=self.store.chain_public_key)

    def heads(self) -> list[Head]:
        return self.store.heads()


class _KeyRow:
    """Just what ``service_keys`` reads of a case."""

    __slots__ = ("batch_id", "case_id")

    def __init__(self, case_id: str, batch_id: str | None) -> None:
        self.case_id, self.batch_id = case_id, batch_id


def _one(keys: tuple[str, ...]) -> str:
    return keys[0]


def _need(value: str, problem: str) -> None:
    if not value or not value.strip():
        raise Refused(problem)


def _ts(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise Refused("a time needs its zone, e.g. 2025-05-30T10:00+08:00")
    return utc_text(moment)


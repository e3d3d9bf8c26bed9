"""Reminders to applicants and 差评 alerts to duty managers, each sent once.

The seam is :class:`Notifier` (``send(to, text, key)``); :class:`HttpSmsGateway`
is the default adapter, a JSON POST to an SMS gateway. :class:`NotifyJob` finds
what is due, records it in the ``notifications`` outbox (a
:class:`~hcp.collector.retry_outbox.RetryOutbox`, unordered; key
``reminder:<case>`` or ``alert:<rating>``) BEFORE sending, and marks it sent
after: a restart finds the record and never sends again what was marked sent. The window between the
gateway's answer and the mark is covered by the idempotency key the gateway
receives with each message. Phone numbers go to the gateway only: no log line,
no exception text and no stored record other than the sealed contact holds one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from hcp.collector.channels import Contacts
from hcp.collector.exc import CollectorError
from hcp.collector.retry_outbox import NOTIFICATIONS, Backoff, OutboxItem, Outcome, RetryOutbox
from hcp.collector.rules import last_rating_day, service_keys
from hcp.collector.store import Store
from hcp.domain import Level, china_date, utc_text
from hcp.ui.receipt import ReceiptMaker

_BACKOFF_FIRST_S = 5.0
_BACKOFF_CAP_S = 3600.0


class NotifyError(CollectorError):
    """A message the gateway did not take; ``permanent`` when sending again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Notifier(Protocol):
    """Sends one short text to one phone number; raises NotifyError when it was not taken."""

    def send(self, to: str, text: str, key: str) -> None: ...


@dataclass(frozen=True)
class HttpSmsGateway:
    """POST ``{"to", "text", "id"}`` as JSON to an SMS gateway; 2xx means taken."""

    url: str
    token: str = ""
    timeout_s: float = 10.0

    def send(self, to: str, text: str, key: str) -> None:
        body = json.dumps({"to": to, "text": text, "id": key}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read()
        except urllib.error.HTTPError as err:
            # A 4xx other than throttling will fail again the same way.
            raise NotifyError(f"gateway answered HTTP {err.code}",
                              permanent=400 <= err.code < 500 and err.code not in (408, 429)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise NotifyError(f"gateway unreachable ({type(err).__name__})") from None


@dataclass(frozen=True)
class NotifySettings:
    """What the job needs besides the store: who the duty managers are, receipts, limits."""

    duty_managers: dict[str, str]  # hall id -> phone
    receipts: ReceiptMaker | None = None
    hall_names: dict[str, str] | None = None
    max_attempts: int = 8


@dataclass(frozen=True)
class NotifyRun:
    queued: int
    sent: int
    failed: int


class NotifyJob:
    """Queue due reminders and alerts, then send what is due; one call per poll."""

    def __init__(self, store: Store, notifier: Notifier, settings: NotifySettings) -> None:
        self.store = store
        self.notifier = notifier
        self.settings = settings
        self.profile = store.profile
        self.contacts = Contacts(store)
        self.outbox = RetryOutbox(store, NOTIFICATIONS, Backoff(_BACKOFF_FIRST_S, _BACKOFF_CAP_S,
                                                                settings.max_attempts))

    def run(self, now: datetime) -> NotifyRun:
        queued = self.queue_alerts(now) + self.queue_reminders(now)
        sent, failed = self.send_due(now)
        return NotifyRun(queued, sent, failed)

    # -- what is due -----------------------------------------------------------

    def queue_alerts(self, now: datetime) -> int:
        """One alert per follow-up opened (every accepted 差评 by a person) since the last run."""
        store = self.store
        with store.exclusive("notify-queue") as mine:
            if not mine:  # another collector queues them now (PostgreSQL)
                return 0
            rows = store.followups_opened_after(store.read_cursor("notify-alerts"))
            queued = self.outbox.enqueue([(f"alert:{rid}", "alert", rid) for _id, rid in rows], now)
            if rows:
                store.move_cursor("notify-alerts", rows[-1][0])
        return queued

    def queue_reminders(self, now: datetime) -> int:
        """One reminder per case with a contact, unrated ``reminder_after_hours`` after completion."""
        hours = self.profile.reminder_after_hours
        if hours is None or not {"sms", "message"} & set(self.profile.reminder_channels):
            return 0
        cutoff = utc_text(now - timedelta(hours=hours))
        with self.store.exclusive("notify-queue") as mine:
            if not mine:
                return 0
            due = [row for row in self.store.unreminded_cases(cutoff) if self._unrated(row, now)]
            return self.outbox.enqueue([(f"reminder:{row[0]}", "reminder", row[0]) for row in due], now)

    def _unrated(self, row: tuple, now: datetime) -> bool:
        case_id, batch_id, completed_at = row
        last = last_rating_day(completed_at, self.profile)
        if last is not None and china_date(now) > last:
            return False
        keys = service_keys([_KeyRow(case_id, batch_id)], self.profile)  # type: ignore[list-item]
        return not self.store.claims(keys)

    # -- sending ---------------------------------------------------------------

    def send_due(self, now: datetime) -> tuple[int, int]:
        """Send every pending notification whose time has come; (sent, given up)."""
        drained = self.outbox.drain(now, lambda item: self._send_one(item, now))
        return drained.sent, drained.given_up

    def _send_one(self, item: OutboxItem, now: datetime) -> Outcome:
        subject = item.values["subject"]
        message = self._reminder(subject, now) if item.values["kind"] == "reminder" else self._alert(subject)
        if message is None:
            return Outcome.give_up("nothing to send: no contact, or the case was rated", tried=False)
        try:
            self.notifier.send(message[0], message[1], item.key)
        except NotifyError as err:
            return Outcome.give_up(str(err)) if err.permanent else Outcome.retry(str(err))
        return Outcome.sent()

    def statuses(self) -> dict[str, int]:
        """How many notifications are pending, sent, failed."""
        return self.outbox.statuses()

    def _reminder(self, case_id: str, now: datetime) -> tuple[str, str] | None:
        phone = self.contacts.phone(case_id)
        row = self.store.cases([case_id]).get(case_id)
        if phone is None or row is None or not self._unrated((case_id, row.batch_id, row.completed_at), now):
            return None
        hall = (self.settings.hall_names or {}).get(row.hall_id, "政务服务大厅")
        link = f"：{self.settings.receipts.url(case_id, now.timestamp())}" if self.settings.receipts else ""
        return phone, f"【好差评】您在{hall}办理的“{row.item_name}”尚未评价，欢迎点击链接评价{link}"

    def _alert(self, rating_id: str) -> tuple[str, str] | None:
        row = self.store.alert_facts(rating_id)
        phone = self.settings.duty_managers.get(row[0]) if row else None
        if phone is None:
            return None
        hall_id, window_id, score, channel, due = row
        hall = (self.settings.hall_names or {}).get(hall_id, hall_id)
        deadline = f"，请于{_cst(due)}前回访" if due else "，请及时回访"
        # Never the rater's identity: the rating id, where and how, nothing about who.
        return phone, (f"【差评提醒】{hall} 窗口{window_id} 收到一条差评（{Level(score).label}，渠道 {channel}），"
                       f"评价编号 {rating_id}{deadline}。")


@dataclass(frozen=True)
class _KeyRow:
    case_id: str
    batch_id: str | None


def _cst(stored: str) -> str:
    from hcp.domain import CST

    return datetime.fromisoformat(stored).astimezone(CST).strftime("%m月%d日%H:%M")

"""The collector service: MQTT in, the store in the middle, answers out.

The link's network thread only queues what arrives. One worker thread owns
the database: it takes up to ``group_commit`` queued messages, handles them
in ONE transaction (a savepoint each), commits, publishes the answers, and
only then acknowledges each MQTT message. A crash anywhere before the
acknowledgement means the broker delivers the message again, and the store
answers a rating it has seen exactly as the first time, so nothing is lost
and nothing is stored twice.

A commit that fails (disk I/O, disk full, a lock held too long) is tried again
in place, with a growing wait. It is not left to the broker: Mosquitto
redelivers only on a reconnect, which a healthy connection never makes, and
the messages it holds unacknowledged (``max_inflight_messages``) would stop
every other delivery. A message whose handling fails (a bug) is acknowledged
without an answer for the same reason; its sender keeps it and sends it again
(a terminal after ``sync.resend_after_s``, a business system until answered).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hcp.collector.channels import Contacts
from hcp.collector.exc import DatabaseError, MessageFailed, MessageRefused, StoreError
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.sealing import SealKey, open_cases, seal_key_path
from hcp.collector.store import Answer, Store, database_errors, database_location
from hcp.collector.store.chain import head_json as chain_head_json
from hcp.collector.triage import triage
from hcp.collector.upstream_identity import Identities
from hcp.config.policy import Profile
from hcp.config.schema import CollectorConfig
from hcp.domain import now_cst
from hcp.exc import ProtocolError
from hcp.fastwire import AnyRatingMessage, decode_rating_message, encode_ack
from hcp.pki import mqtt_client_id
from hcp.protocol import (
    CaseRecord,
    CaseResult,
    CasesAckMessage,
    CasesMessage,
    StatusMessage,
    Topics,
    decode,
    encode,
)
from hcp.retry import backoff_delay
from hcp.sync.exc import LinkDown
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink, tls_from

log = logging.getLogger("hcp.collector")

#: How long the worker waits for a message before looking at the stop flag.
_IDLE_S = 0.2
_JOIN_S = 30.0
#: A worker that has not come round its loop for this long is hung: the watchdog pings stop.
_STUCK_S = 60.0
#: Seconds after start before the first default job (then collector.lifecycle_interval_s).
_FIRST_LIFECYCLE_S = 10.0
#: How long a clean shutdown waits for the broker to take the last signed head.
_PUBLISH_WAIT_S = 5.0
#: A failed commit is tried again after this many seconds, doubling up to _RETRY_MAX_S.
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0

Reply = tuple[str, bytes]


@dataclass(frozen=True)
class _Queued:
    incoming: Incoming
    received_at: datetime
    generation: int  # the connection it came on; its mid means nothing on another


class Collector:
    """Ratings and case records from MQTT into the store, with answers back.

    ``database`` and ``secret_file`` default to the configuration's, then to
    ``<data.dir>/collector.sqlite`` and ``<data.dir>/collector.key``; the key
    that opens sealed applicant fields sits beside the latter (``collector-seal.key``).
    """

    def __init__(self, config: CollectorConfig, *, database: Path | str | None = None,
                 secret_file: Path | None = None, profile: Profile | None = None) -> None:
        self.config = config
        self.topics = Topics(config.broker.prefix)
        #: An SQLite file or a ``postgresql://`` URL.
        self.database: Path | str = database_location(database or config.database_path)
        self.secret_file = Path(secret_file or config.key_path)
        self.profile = profile or config.policy.load()
        self._real_name_upstream = _real_name_upstream(config)
        self._queue: queue.Queue[_Queued] = queue.Queue()
        self._stop = threading.Event()
        self._generation = 0
        self._store: Store | None = None
        self._seal_key: SealKey | None = None
        self._link: MqttLink | None = None
        self._worker: threading.Thread | None = None
        self._beat = time.monotonic()
        self._down_since: float | None = None  # monotonic time the database failed a commit; None: it works
        self._down_reason = ""
        # The first default job waits a little and for an idle moment: ratings
        # the broker kept while we were down were made in time and must be
        # handled before their cases are defaulted.
        self._lifecycle_due = time.monotonic() + _FIRST_LIFECYCLE_S
        self._sign_due = time.monotonic() + config.chain.sign_interval_s

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Open the store, connect, subscribe and start the worker."""
        if self._worker is not None:
            return
        key = load_or_create_key(self.secret_file)
        self._seal_key = SealKey.load_or_create(seal_key_path(self.secret_file))
        # The worker thread owns the connection from here on.
        self._store = Store.open(self.database, self.profile, key, check_same_thread=False,
                                 heads_file=self.config.chain.heads_file)
        self._link = MqttLink(self._link_settings(), self._on_message, self._on_connection)
        for topic in (*self._shared_topics(), self.topics.all_status):
            self._link.subscribe(topic, qos=1)
        self._worker = threading.Thread(target=self._work, name="collector-worker", daemon=True)
        self._worker.start()
        self._link.start()
        log.info("collector %s started on %s as MQTT client %s (database %s)", self.config.collector.id,
                 self.topics.prefix, self._link.settings.client_id, self.database)

    def _shared_topics(self) -> list[str]:
        """What one member of the share group handles alone: ratings and case records (each answered once).

        The terminals' status is subscribed unshared: it is the fleet's current state, which every member
        writes in order, and a retained status reaches no shared subscription.
        """
        group = self.config.collector.share_group
        return [Topics.shared(self.topics.all_ratings, group), Topics.shared(self.topics.cases, group)]

    def _link_settings(self) -> LinkSettings:
        broker = self.config.broker
        # Alone: a persistent session with manual acks, so what was not
        # acknowledged after its commit is delivered again, even across a
        # restart. In a share group: a clean session, because Mosquitto keeps
        # handing a member's share to its kept session while it is away and
        # does not pass a member's unacknowledged messages to another
        # (eclipse/mosquitto #1747, #2662); the terminals resend those
        # (sync.resend_after_s) and the group answers them.
        shared = bool(self.config.collector.share_group)
        return LinkSettings(host=broker.host, port=broker.port,
                            client_id=mqtt_client_id(broker.cert_file, self.config.collector.id),
                            keepalive_s=broker.keepalive_s, session_expiry_s=0 if shared else broker.session_expiry_s,
                            clean_start=shared, manual_ack=True, backoff_max_s=broker.reconnect_max_s,
                            tls=tls_from(broker.ca_file, broker.cert_file, broker.key_file))

    def wait_connected(self, timeout: float) -> bool:
        """Block until the link is up or ``timeout`` seconds passed."""
        return self._link is not None and self._link.wait_connected(timeout)

    def close(self) -> None:
        """Finish the batch at hand, sign the chain head, then disconnect and close the store; safe twice."""
        self._stop.set()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(_JOIN_S)
        if worker is not None and not worker.is_alive():
            # A clean shutdown leaves no record without a signed head, and the retained head is the last one.
            self._sign_head(wait_s=_PUBLISH_WAIT_S, publish_last=True)
        link, self._link = getattr(self, "_link", None), None
        if link is not None:
            link.close()
        store, self._store = getattr(self, "_store", None), None
        if store is not None:
            store.close()

    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_forever(self, stop_event: threading.Event, heartbeat: Callable[[], None] | None = None,
                    on_status: Callable[[str], None] | None = None) -> None:
        """Serve until ``stop_event`` is set (the CLI sets it on SIGTERM).

        ``heartbeat`` (the systemd watchdog) is called each second while the
        worker is alive and turning; a worker stuck longer than _STUCK_S stops it.
        ``on_status`` gets :attr:`status` each second it is not serving, and once when it serves again.
        """
        self.start()
        said = ""
        try:
            while not stop_event.wait(1.0):
                if self._worker is None or not self._worker.is_alive():
                    log.error("the collector's worker stopped; exiting so the service manager restarts us")
                    return
                if heartbeat is not None and time.monotonic() - self._beat < _STUCK_S:
                    heartbeat()
                status = self.status
                if on_status is not None and (status != said or self._down_since is not None):
                    on_status(status)
                said = status
        finally:
            self.close()

    # -- network thread -----------------------------------------------------

    def _on_message(self, incoming: Incoming) -> None:
        self._queue.put(_Queued(incoming, now_cst(), self._generation))

    def _on_connection(self, up: bool) -> None:
        if not up:
            # Messages queued from the lost connection can still be stored,
            # but their ids must not be acknowledged on the next one.
            self._generation += 1

    # -- worker -------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            self._beat = time.monotonic()
            batch = self._take()
            if batch:
                self._process(batch)
            elif self._beat >= self._lifecycle_due and self._link is not None and self._link.wait_connected(0):
                self._run_lifecycle()
            if time.monotonic() >= self._sign_due:  # busy or idle: a steady stream must not postpone it
                self._sign_head()

    def _sign_head(self, wait_s: float | None = None, publish_last: bool = False) -> None:
        """Sign the chain head (stored, appended to the heads file) and publish it retained.

        The retained copy and the heads file are the anchors outside the
        database: deleting the chain's tail together with the heads stored in
        it still leaves a head the chain no longer reaches. ``publish_last``:
        publish the newest stored head even when another connection (the
        phone page's) signed it.
        """
        self._sign_due = time.monotonic() + self.config.chain.sign_interval_s
        if self._store is None:
            return
        try:
            head = self._store.sign_head(now_cst())
            if head is None and publish_last:
                head = next(iter(self._store.heads()[-1:]), None)
        except (StoreError, OSError) as err:
            log.error("could not sign the chain head: %s; trying again in %s s", err,
                      self.config.chain.sign_interval_s)
            return
        if head is None or self._link is None:
            return
        try:
            self._link.publish(self.topics.chain_head, chain_head_json(head).encode(), qos=1, retain=True,
                               wait_s=wait_s)
        except LinkDown as err:
            log.warning("signed chain head %d not published: %s; the heads file and the database keep it",
                        head.seq, err)

    def _run_lifecycle(self) -> None:
        """The default job, on the worker thread that owns the database."""
        assert self._store is not None
        interval = self.config.collector.lifecycle_interval_s
        self._lifecycle_due = time.monotonic() + interval
        lifecycle = Lifecycle(self._store)
        try:
            with database_errors():
                run = lifecycle.run_defaults(now_cst())
        except DatabaseError as err:
            log.error("lifecycle job failed: %s; it runs again in %s s", err, interval)
            return
        if run.defaulted:
            log.info("default job: %d case(s) given the default rating", run.defaulted)

    def _take(self) -> list[_Queued]:
        try:
            batch = [self._queue.get(timeout=_IDLE_S)]
        except queue.Empty:
            return []
        while len(batch) < self.config.collector.group_commit:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[_Queued]) -> None:
        """Handle a batch in one transaction; answer and acknowledge only after COMMIT.

        Nothing of a failed commit was stored or answered; the same batch is
        tried again here until it commits or the collector is closed.
        """
        failures = 0
        while True:
            try:
                done = self._commit(batch)
                break
            except DatabaseError as err:  # DatabaseUnavailable, DatabaseFull; or a rule broken at COMMIT
                wait = backoff_delay(failures, _RETRY_FIRST_S, _RETRY_MAX_S)
                failures += 1
                if failures == 1:
                    self._database_lost(err)
                log.error("could not commit %d message(s): %s; not acknowledging them, trying again in %.1f s",
                          len(batch), err, wait)
            if self._stop.wait(wait):
                return  # closing: unacknowledged, the broker delivers them again after the restart
            self._beat = time.monotonic()  # waiting on purpose, not hung
        if failures:
            self._database_back()
        for item, replies in done:
            self._answer(item, replies)

    @property
    def status(self) -> str:
        """One line for the service manager (systemd's STATUS=): serving, or the database lost since when."""
        if self._down_since is None:
            return f"collector {self.config.collector.id}: serving"
        return (f"collector {self.config.collector.id}: database unavailable for "
                f"{time.monotonic() - self._down_since:.0f} s ({self._down_reason}); not acknowledging")

    def _database_lost(self, err: DatabaseError) -> None:
        """The database failed: acknowledge nothing until a commit succeeds; in a share group, step aside.

        Nothing is acknowledged before its commit, so what this process holds
        the terminals and the business system send again. Leaving the shared
        subscriptions makes the broker hand the stream to the other members
        meanwhile, instead of this one's share waiting here.
        """
        self._down_since, self._down_reason = time.monotonic(), str(err)
        shared = self._shared_topics() if self.config.collector.share_group else []
        log.error("database unavailable: %s; acknowledging nothing until it is back%s", err,
                  "; leaving the share group's subscriptions meanwhile" if shared else "")
        if self._link is not None:
            for topic in shared:
                self._link.unsubscribe(topic)

    def _database_back(self) -> None:
        """A commit worked again: say so and, in a share group, take a share of the stream again."""
        down = time.monotonic() - (self._down_since or time.monotonic())
        self._down_since, self._down_reason = None, ""
        shared = self._shared_topics() if self.config.collector.share_group else []
        log.warning("database available again after %.1f s%s", down,
                    "; rejoining the share group" if shared else "")
        if self._link is not None:
            for topic in shared:
                self._link.subscribe(topic, qos=1)

    def _commit(self, batch: list[_Queued]) -> list[tuple[_Queued, list[Reply]]]:
        assert self._store is not None
        with self._store.batch():
            return [(item, self._handle_guarded(item)) for item in batch]

    def _handle_guarded(self, item: _Queued) -> list[Reply]:
        """The replies to one message; none when handling it failed (then nothing of it is stored)."""
        assert self._store is not None
        try:
            with self._store.savepoint():
                return self._handle(item)
        except Exception as err:
            if isinstance(err, DatabaseError) and not isinstance(err, MessageFailed):
                raise  # the database itself failed (DatabaseUnavailable, DatabaseFull): the whole batch again
            # The supervisor boundary for one message: a bug must neither stop
            # the collector nor turn a rating into a wrong answer. Its content
            # is not logged (it may name people); where it broke is the engine's error's place.
            cause = err.__cause__ if isinstance(err, MessageFailed) and err.__cause__ is not None else err
            where = traceback.extract_tb(cause.__traceback__)[-1]
            log.error("processing a message on %s failed (%s at %s:%s); acknowledged without an answer, so "
                      "its sender sends it again", item.incoming.topic, type(cause).__name__, where.filename,
                      where.lineno)
            return []

    def _answer(self, item: _Queued, replies: list[Reply]) -> None:
        assert self._link is not None
        try:
            for topic, payload in replies:
                self._link.publish(topic, payload, qos=1)
            if item.generation == self._generation:
                self._link.ack(item.incoming)
        except LinkDown as err:
            log.info("answer to %s postponed: %s; the broker delivers it again", item.incoming.topic, err)

    # -- messages -----------------------------------------------------------

    def _handle(self, item: _Queued) -> list[Reply]:
        topic = item.incoming.topic
        if topic == self.topics.cases:
            return self._on_cases(item)
        device_id = self.topics.device_of(topic)
        leaf = topic.rpartition("/")[2]
        if device_id is None or topic != self.topics.device(device_id, leaf):
            log.warning("ignored a message on %s: not a device topic", topic)
            return []
        if leaf == "rating":
            return self._on_rating(device_id, item)
        if leaf == "status":
            self._on_status(device_id, item)
            return []
        log.warning("ignored a message on %s: no such device topic", topic)
        return []

    def _on_rating(self, device_id: str, item: _Queued) -> list[Reply]:
        assert self._store is not None
        payload = item.incoming.payload
        ack = self.topics.ack(device_id)
        try:
            message: AnyRatingMessage | None = decode_rating_message(payload)
            rejected, error, first = [], None, None
        except ProtocolError as err:
            log.warning("rating message on %s: %s", item.incoming.topic, err)
            found = triage(payload, err)
            message, error, first = found.message, found.error, found.first_rating_id
            rejected = [(r.rating_id, r.outcome, r.reason) for r in found.rejected]
        if message is None:
            return [(ack, encode_ack(rejected, error, first))]
        try:
            answers = self._store.ingest_answers(device_id, message, item.received_at)
        except MessageRefused as refused:
            # Nothing of it is stored or answered: the terminal keeps every rating and alarms.
            log.warning("rating message on %s refused: %s", item.incoming.topic, refused)
            return [(ack, encode_ack([], str(refused), message.ratings[0].rating_id))]
        self._log_rejections(device_id, answers)
        return [(ack, encode_ack([*answers, *rejected], error))]

    @staticmethod
    def _log_rejections(device_id: str, answers: list[Answer]) -> None:
        for rating_id, outcome, reason in answers:
            if outcome == "rejected":
                log.info("rating %s from %s rejected: %s", rating_id, device_id, reason)

    def _on_cases(self, item: _Queued) -> list[Reply]:
        assert self._store is not None
        try:
            message = decode(CasesMessage, item.incoming.payload)
        except ProtocolError as err:
            log.warning("cases message refused: %s", err)
            return [(self.topics.cases_ack, encode(CasesAckMessage(v=1, error=str(err))))]
        assert self._seal_key is not None
        cases, unopened = open_cases(message.cases, self._seal_key)  # sealed fields; a failure rejects its case
        results = self._store.add_cases(cases, item.received_at)
        self._keep_phones(cases, results)
        if self._real_name_upstream:
            Identities(self._store).keep(cases, results, item.received_at)
        return [(self.topics.cases_ack, encode(CasesAckMessage(v=1, results=[*results, *unopened])))]

    def _keep_phones(self, cases: list[CaseRecord], results: list[CaseResult]) -> None:
        """Keep the applicant's phone (encrypted, for the reminder SMS) of every case just stored."""
        assert self._store is not None
        stored = {r.case_id for r in results if r.outcome == "stored"}
        contacts = Contacts(self._store)
        for case in cases:
            if case.applicant_phone and case.case_id in stored:
                contacts.add(case.case_id, case.applicant_phone)

    def _on_status(self, device_id: str, item: _Queued) -> None:
        assert self._store is not None
        if not item.incoming.payload:
            return  # a cleared retained status
        try:
            status = decode(StatusMessage, item.incoming.payload)
        except ProtocolError as err:
            log.warning("status on %s ignored: %s", item.incoming.topic, err)
            return
        if status.device_id != device_id:
            log.warning("status on %s ignored: device_id %s does not match the topic's", item.incoming.topic,
                        status.device_id)
        elif not self._store.record_status(device_id, status, item.received_at):
            log.info("status from unregistered device %s ignored", device_id)


def _real_name_upstream(config: CollectorConfig) -> bool:
    """Whether the configured upstream preset sends the rater's identity (so it is kept, sealed)."""
    from hcp.collector.upstream_preset import load_preset

    if not config.upstream.url:
        return False
    preset = load_preset(config.upstream.code_table, config.upstream.code_table_file)
    return preset is not None and preset.identity

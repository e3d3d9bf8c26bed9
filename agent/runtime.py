"""The agent process: one window's machine, outbox, sync and front ends, on one thread.

Everything that happens reaches the agent's thread through one queue: front
ends post events from their own threads, the MQTT link posts what it hears
from its network thread. The agent's thread alone feeds the machine, performs
its commands, writes the outbox and drives the syncer, so none of those needs
a lock of its own and the order of events is the order they were posted.

The promise kept here: a ``StoreRating`` is committed to the outbox (COMMIT
returned) before ``RatingStored`` goes back to the machine, and only then may
the machine thank the citizen.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from hcp import __version__
from hcp.agent import remote
from hcp.agent.clock import Clock
from hcp.agent.events import (
    ClerkTrigger,
    Command,
    Event,
    FrontEnd,
    RatingStored,
    StatusLight,
    StoreFailed,
    StoreRating,
    Thanked,
    Tick,
)
from hcp.agent.frontends import build_frontends, shows_reasons
from hcp.agent.machine import Machine, State, prompt_spec
from hcp.config.policy import Profile
from hcp.config.schema import AgentConfig
from hcp.domain import Outcome
from hcp.exc import ProtocolError
from hcp.protocol import AckMessage, AckResult, PromptMessage, StatusMessage, Topics, decode, encode
from hcp.sync.exc import OutboxError, OutboxFull, SyncError
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink, Will, tls_from
from hcp.sync.outbox import Draft, Outbox
from hcp.sync.syncer import Syncer

log = logging.getLogger("hcp.agent")

#: How often the machine is given a Tick (its deadlines are seconds long).
TICK_S = 0.1
#: How often the syncer is pumped without a reason (resends, a link that came back).
PUMP_S = 1.0
#: What the agent last knew, for ``hcp status`` (in data.dir).
STATUS_FILE = "status.json"
_PROMPTING = frozenset({State.PROMPTED, State.REASONS, State.HALL})


@dataclass(frozen=True)
class _LinkChange:
    up: bool


@dataclass(frozen=True)
class _Heard:
    message: Incoming


class Agent:
    """One terminal: build it from an AgentConfig, ``run(stop)`` it, ``close()`` it.

    ``frontends`` default to those ``frontend.kinds`` names; ``clock`` and
    ``profile`` may be injected by tests (default: from the configuration);
    ``link_options`` are extra LinkSettings fields (tests shorten the backoff).
    """

    def __init__(self, config: AgentConfig, frontends: list[FrontEnd] | None = None, *,
                 clock: Clock | None = None, profile: Profile | None = None,
                 link_options: dict[str, Any] | None = None) -> None:
        self.config = config
        self._link_options = link_options or {}
        self.device_id = config.device.id
        self.topics = Topics(config.broker.prefix)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._started = False
        self._outbox: Outbox | None = None
        self._link: MqttLink | None = None
        self._frontends: list[FrontEnd] = []
        self._status: tuple[StatusLight, str] | None = None
        self._store_error: str | None = None
        # rating id -> prompt id, for telling the clerk link the collector's verdict.
        self._prompt_of: dict[str, str] = {}
        self._last_progress = time.monotonic()
        self._last_ack_at: datetime | None = None
        try:
            self._build(config, frontends, clock, profile)
        except BaseException:
            self.close()
            raise

    def _build(self, config: AgentConfig, frontends: list[FrontEnd] | None, clock: Clock | None,
               profile: Profile | None) -> None:
        self.clock = clock or Clock(config.clock.synced)
        self._settings = remote.load_last_good(config.data.dir)
        applied = remote.apply(config, self._settings)
        self.config = config = applied.config
        self._own_profile = profile
        profile = profile or applied.profile or config.policy.load()
        self._outbox = Outbox(config.data.dir / "outbox.sqlite", config.data.outbox_max_rows)
        self.machine = Machine(profile, config.timing, self._outbox.rated_case_ids(),
                               shows_reasons=shows_reasons(config.frontend.kinds))
        self._link = MqttLink(self._link_settings(), self._on_message, self._on_connection)
        self.syncer = Syncer(self._outbox, self._link.publish, self.topics, self.device_id,
                             batch_size=config.sync.batch_size, max_in_flight=config.sync.max_in_flight,
                             resend_after_s=config.sync.resend_after_s)
        self._frontends = frontends if frontends is not None else build_frontends(config)

    def _link_settings(self) -> LinkSettings:
        broker = self.config.broker
        offline = StatusMessage(v=1, device_id=self.device_id, state="offline", version=__version__)
        options = {"backoff_max_s": broker.reconnect_max_s, **self._link_options}
        from hcp.pki import mqtt_client_id

        client_id = mqtt_client_id(broker.cert_file, f"hcp-agent-{self.device_id}")
        return LinkSettings(host=broker.host, port=broker.port, client_id=client_id,
                            keepalive_s=broker.keepalive_s, session_expiry_s=broker.session_expiry_s,
                            clean_start=False, will=Will(self.topics.status(self.device_id), encode(offline)),
                            tls=tls_from(broker.ca_file, broker.cert_file, broker.key_file), **options)

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None
        return self._outbox

    @property
    def link(self) -> MqttLink:
        assert self._link is not None
        return self._link

    # ---- threads post here ---------------------------------------------------

    def post(self, event: Event) -> None:
        """Hand an event to the agent's thread; safe from any thread."""
        self._queue.put(event)

    def _on_message(self, message: Incoming) -> None:
        self._queue.put(_Heard(message))  # decoded on the agent's thread: the network thread stays quick

    def _on_connection(self, up: bool) -> None:
        self._queue.put(_LinkChange(up))

    # ---- the loop ------------------------------------------------------------

    def run(self, stop: threading.Event, heartbeat: Callable[[], None] | None = None) -> None:
        """Serve the window until ``stop`` is set; call from one thread only, and close() after it returns.

        ``heartbeat`` is called on every turn of the loop (the systemd watchdog):
        a loop that hangs stops calling it.
        """
        self._start()
        next_tick = next_pump = next_status = time.monotonic()
        while not stop.is_set() and not self._closed:
            if heartbeat is not None:
                heartbeat()
            try:
                item = self._queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                item = None
            if item is not None:
                self._dispatch(item)
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + TICK_S
                self._feed(Tick())
            if now >= next_pump:
                next_pump = now + PUMP_S
                self._pump()
            if now >= next_status:
                next_status = now + self.config.sync.status_interval_s
                self._publish_status()
            self._update_light()

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self._connect_clerk()
        for frontend in self._frontends:
            frontend.start(self.post)
        self.link.subscribe(self.topics.prompt(self.device_id))
        self.link.subscribe(self.topics.ack(self.device_id))
        self.link.subscribe(self.topics.config(self.device_id))
        self.link.start()
        log.info("agent %s started: outbox depth %d, clock %s", self.device_id, self.outbox.depth(),
                 "synced" if self.clock.synced else "NOT synced")

    def _connect_clerk(self) -> None:
        """Tell the other front ends who signed in at a clerk link (idle screen, button prompts)."""
        sources = [f for f in self._frontends if hasattr(f, "when_clerk_changed")]
        sinks = [f for f in self._frontends if f not in sources]
        for source in sources:
            source.when_clerk_changed = lambda clerk: self._clerk_changed(clerk, sinks)

    @staticmethod
    def _clerk_changed(clerk: Any, sinks: list[FrontEnd]) -> None:
        for sink in sinks:
            if hasattr(sink, "set_clerk"):  # the touchscreen's idle screen
                if clerk is None:
                    sink.set_clerk(None)
                else:
                    sink.set_clerk(clerk.name, clerk.employee_no, clerk.photo)
            if hasattr(sink, "clerk"):  # the GPIO panel's 请评价 button prompts carry the clerk
                sink.clerk = clerk

    def _dispatch(self, item: Any) -> None:
        if isinstance(item, _Heard):
            self._heard(item.message)
        elif isinstance(item, _LinkChange):
            self._link_changed(item.up)
        else:
            self._feed(item)

    # ---- the machine ---------------------------------------------------------

    def _feed(self, event: Event) -> None:
        try:
            commands = self.machine.handle(event, self.clock.now())
        except Exception:  # the machine is tested never to raise; if it does, the window must live on
            log.exception("state machine failed on %s", type(event).__name__)
            return
        answers = [self._perform(command) for command in commands]
        stored = False
        for answer in answers:
            if answer is not None:
                self._feed(answer)
                stored = stored or isinstance(answer, RatingStored)
        if stored:
            self._pump()  # after the thanks: the citizen need not wait for the network

    def _perform(self, command: Command) -> Event | None:
        """Give ``command`` to the front ends; a StoreRating is then stored and its answer returned."""
        if isinstance(command, Thanked):
            command = replace(command, link_up=self.link.connected)
            log.info("thanked for rating %s (%s, cases %s, score %d, link %s)", command.rating_id,
                     command.kind.value, ",".join(command.case_ids), command.score,
                     "up" if command.link_up else "down")
        for frontend in self._frontends:
            try:
                frontend.perform(command)
            except Exception:  # one broken front end must not silence the others or stop the window
                log.exception("front end %s failed to perform %s", type(frontend).__name__,
                              type(command).__name__)
        return self._store(command) if isinstance(command, StoreRating) else None

    def _store(self, command: StoreRating) -> Event:
        prompt = command.prompt
        draft = Draft(kind=command.kind, case_ids=prompt.case_ids, score=command.score,
                      rated_at=command.rated_at, clock_synced=self.clock.synced, prompt_id=prompt.prompt_id,
                      hall_id=self.config.device.hall_id, window_id=self.config.device.window_id,
                      clerk_id=prompt.clerk_id, item_code=prompt.item_code, reasons=command.reasons,
                      boot_id=self.clock.boot_id, uptime_s=self.clock.uptime_s())
        was_empty = self.outbox.depth() == 0
        try:
            rating = self.outbox.add(draft)
        except (OutboxFull, OutboxError, ValueError) as err:  # ValueError: a draft the wire model refuses
            self._store_error = str(err)
            log.error("rating for prompt %s NOT stored: %s", prompt.prompt_id, err)
            return StoreFailed(str(err))
        self._store_error = None
        self._prompt_of[rating.rating_id] = prompt.prompt_id
        if was_empty:
            self._last_progress = time.monotonic()
        log.info("stored rating %s seq %d (%s, prompt %s)", rating.rating_id, rating.seq, command.kind.value,
                 prompt.prompt_id)
        return RatingStored(rating.rating_id, rating.seq, command.kind)

    # ---- the network ---------------------------------------------------------

    def _heard(self, message: Incoming) -> None:
        if message.topic == self.topics.prompt(self.device_id):
            self._heard_prompt(message.payload)
        elif message.topic == self.topics.ack(self.device_id):
            self._heard_ack(message.payload)
        elif message.topic == self.topics.config(self.device_id):
            self._heard_settings(message.payload)
        else:
            log.debug("ignored a message on %s", message.topic)

    def _heard_prompt(self, payload: bytes) -> None:
        try:
            prompt = decode(PromptMessage, payload)
        except ProtocolError as err:
            log.warning("malformed prompt ignored: %s", err)
            return
        log.info("prompt %s for cases %s", prompt.prompt_id, ",".join(prompt.case_ids))
        self._feed(ClerkTrigger(prompt_spec(prompt)))

    def _heard_ack(self, payload: bytes) -> None:
        try:
            ack = decode(AckMessage, payload)
        except ProtocolError as err:
            log.warning("malformed ack ignored: %s", err)
            return
        try:
            results = self.syncer.on_ack(ack)  # logs a message-level error
        except SyncError as err:
            log.error("cannot settle an ack: %s", err)
            return
        if not results:
            return  # a refusal is not progress: the ratings are still waiting
        self._last_progress = time.monotonic()
        self._last_ack_at = self.clock.now()
        for result in results:
            if result.outcome is Outcome.REJECTED:
                log.warning("collector rejected rating %s: %s", result.rating_id, result.reason)
            self._tell_outcome(result)
        if self._store_error and self.outbox.depth() < self.outbox.max_rows:
            self._store_error = None  # room again: the next rating will be stored
        self._pump()

    def _heard_settings(self, payload: bytes) -> None:
        """A settings push: validated whole, saved, then applied; a bad one leaves the last good in force."""
        if not payload:
            return  # the operator cleared the retained settings; what runs stays
        try:
            settings = remote.check(payload, self.settings_version)
        except remote.SettingsRejected as err:
            log.warning("settings push refused, keeping version %d: %s", self.settings_version, err)
            return
        try:
            remote.save(self.config.data.dir, settings)
        except OSError as err:
            log.error("settings version %d not saved (%s); not applied", settings.version, err)
            return
        applied = remote.apply(self.config, settings)
        self.config, self._settings = applied.config, settings
        self.machine.retune(self._own_profile or applied.profile or self.config.policy.load(), self.config.timing)
        for frontend in self._frontends:
            if hasattr(frontend, "set_volume"):
                frontend.set_volume(self.config.voice.volume)
        log.info("settings version %d applied: %s", settings.version, remote.describe(settings))
        self._publish_status()

    @property
    def settings_version(self) -> int:
        """The version of the remote settings in force (0: none pushed yet)."""
        return self._settings.version if self._settings is not None else 0

    def _tell_outcome(self, result: AckResult) -> None:
        """Front ends that answer the clerk (the clerk link) learn the collector's verdict per prompt."""
        prompt_id = self._prompt_of.pop(result.rating_id, None)
        if prompt_id is None:
            return
        for frontend in self._frontends:
            if hasattr(frontend, "note_outcome"):
                try:
                    frontend.note_outcome(prompt_id, result.outcome, result.reason)
                except Exception:  # as in _perform: one front end's bug must not stop the window
                    log.exception("front end %s failed to note an outcome", type(frontend).__name__)

    def _link_changed(self, up: bool) -> None:
        log.info("link to %s:%d %s", self.config.broker.host, self.config.broker.port, "up" if up else "down")
        self.syncer.on_connection(up)
        if up:
            self._last_progress = time.monotonic()
            self._publish_status()
            self._pump()

    def _pump(self) -> None:
        if not self.link.connected:
            return
        try:
            self.syncer.pump()
        except SyncError as err:  # LinkDown between the check and the publish, or the outbox failing
            log.warning("sync paused: %s", err)

    def _publish_status(self) -> None:
        status = self.status_message()
        self._write_status_file(status)
        if not self.link.connected:
            return
        try:
            self.link.publish(self.topics.status(self.device_id), encode(status), qos=1, retain=True)
        except SyncError as err:
            log.warning("status not published: %s", err)

    def status_message(self, state: str = "online") -> StatusMessage:
        """The retained status this terminal publishes: health a hall's dashboard can read."""
        try:
            oldest: datetime | None = self.outbox.oldest_rated_at()
        except OutboxError:
            oldest = None
        return StatusMessage(v=1, device_id=self.device_id, state=state, version=__version__,  # type: ignore[arg-type]
                             outbox_depth=self.outbox.depth(), oldest_unsent_at=oldest,
                             clock_synced=self.clock.synced, at=self.clock.now(), boot_id=self.clock.boot_id,
                             uptime_s=self.clock.uptime_s(), settings_version=self.settings_version)

    def _write_status_file(self, status: StatusMessage) -> None:
        """``<data.dir>/status.json`` for ``hcp status``: what the agent knows, including the link state."""
        facts = {"status": json.loads(encode(status)), "link_up": self.link.connected,
                 "broker": f"{self.config.broker.host}:{self.config.broker.port}",
                 "last_ack_at": self._last_ack_at.isoformat() if self._last_ack_at else None,
                 "written_at": self.clock.now().isoformat()}
        path = self.config.data.dir / STATUS_FILE
        try:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(facts, ensure_ascii=False), "utf-8")
            os.replace(tmp, path)
        except OSError as err:
            log.warning("status file %s not written: %s", path, err)

    # ---- the status light ----------------------------------------------------

    def _update_light(self) -> None:
        status = self._light()
        if status == self._status:
            return
        self._status = status
        for frontend in self._frontends:
            try:
                frontend.show_status(*status)
            except Exception:  # as in _perform: the status light is not worth the window
                log.exception("front end %s failed to show status", type(frontend).__name__)

    def _light(self) -> tuple[StatusLight, str]:
        depth = self.outbox.depth()
        if self._store_error:
            return StatusLight.FAULT, self._store_error
        for frontend in self._frontends:  # an unplugged board, a stuck key, a silent clerk PC
            fault = getattr(frontend, "fault", None)
            if fault:
                return StatusLight.FAULT, f"{type(frontend).__name__}: {fault}"
        if self.syncer.refused:
            return StatusLight.FAULT, f"collector refuses ratings ({self.syncer.refused}); {depth} ratings kept"
        if not self.link.connected:
            return StatusLight.OFFLINE, f"link down; {depth} ratings waiting"
        stalled = time.monotonic() - self._last_progress > 2 * self.config.sync.resend_after_s
        if depth and stalled:
            return StatusLight.OFFLINE, f"collector not acknowledging; {depth} ratings waiting"
        if self.machine.state in _PROMPTING:
            return StatusLight.PROMPTED, f"rating in progress; {depth} ratings waiting"
        return StatusLight.IDLE, f"online; {depth} ratings waiting"

    # ---- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Say offline, stop the link, close the front ends and the outbox; safe twice."""
        if self._closed:
            return
        self._closed = True
        link, self._link = self._link, None
        if link is not None:
            self._say_offline(link)
            link.close()
        for frontend in self._frontends:
            try:
                frontend.close()
            except Exception:  # closing the rest matters more than one front end's complaint
                log.exception("front end %s failed to close", type(frontend).__name__)
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            outbox.close()

    def _say_offline(self, link: MqttLink) -> None:
        # A clean DISCONNECT suppresses the will, so the retained status is set by hand.
        if not link.connected or self._outbox is None:
            return
        try:
            link.publish(self.topics.status(self.device_id), encode(self.status_message("offline")), retain=True)
        except SyncError as err:
            log.warning("offline status not published: %s", err)

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The MQTT link: the only module of hcp that imports paho.

The rest of the program sees small dataclasses (:class:`LinkSettings`,
:class:`Incoming`) and the project's exceptions. One :class:`MqttLink` owns
one paho client and one network thread that we drive ourselves with
``client.loop()`` rather than paho's ``loop_start()``. That gives us:

* a supervised loop: a callback of ours that raises is logged and the
  network carries on;
* our own reconnect policy: a random, capped, growing delay, reset after a
  good connection, each attempt logged;
* a persistent MQTT v5 session (clean start off, a session expiry) so QoS 1
  messages sent while a terminal was away are delivered when it is back.

Thread safety: ``publish``, ``ack`` and ``subscribe`` may be called from any
thread. They only queue packets; writing to the socket belongs to the
network thread alone (see :meth:`MqttLink._make_client`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hcp.exc import ConfigError
from hcp.retry import backoff_delay
from hcp.sync.exc import LinkDown

log = logging.getLogger("hcp.sync.mqtt")

#: Errors that mean "the network or the broker failed"; anything else is a bug
#: and is not swallowed by the reconnect loop.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, MQTTException)
#: The longest the network thread sleeps in select(); bounds keepalive checks.
_TICK_S = 0.5
#: How long close() waits for the network thread to send DISCONNECT and stop.
_JOIN_S = 10.0
#: MQTT 5 reason code of a DISCONNECT the broker sends when another client connects with our client id.
_SESSION_TAKEN_OVER = 142
#: A connection the broker closes this soon after accepting it, with no reason, most likely lost to a takeover:
#: Mosquitto 2.0.11 (Debian 12) closes the socket without sending DISCONNECT 142.
_TAKEOVER_SUSPECT_S = 5.0


@dataclass(frozen=True)
class TlsSettings:
    """Files for a TLS connection; the client certificate is optional."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None


def tls_from(ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None) -> TlsSettings | None:
    """TLS settings when a CA file is configured; None means plain MQTT."""
    return None if ca_file is None else TlsSettings(Path(ca_file), cert_file, key_file)


@dataclass(frozen=True)
class Will:
    """The last will: the broker publishes it when the link dies without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class LinkSettings:
    """Everything one link needs to reach its broker and keep its session."""

    host: str
    port: int
    client_id: str
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400
    clean_start: bool = False
    manual_ack: bool = False
    backoff_min_s: float = 0.2
    backoff_max_s: float = 30.0
    will: Will | None = None
    tls: TlsSettings | None = None
    username: str | None = None
    password: str | None = None
    max_inflight: int = 100


@dataclass(frozen=True)
class Incoming:
    """A message the broker delivered to us."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    dup: bool


class MqttLink:
    """A supervised, self-reconnecting MQTT v5 connection.

    ``on_message`` gets every :class:`Incoming`; ``on_connection(True)``
    follows each successful CONNACK once the subscriptions were sent again,
    ``on_connection(False)`` each lost connection. Both run on the network
    thread: keep them short and hand work to your own thread.
    """

    def __init__(self, settings: LinkSettings, on_message: Callable[[Incoming], None],
                 on_connection: Callable[[bool], None] | None = None) -> None:
        self.settings = settings
        self._on_message_cb = on_message
        self._on_connection_cb = on_connection
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        # Held while a connection is opened or closed, so close() never races
        # the network thread's reconnect().
        self._lock = threading.Lock()
        self._subs: dict[str, int] = {}
        self._failures = 0
        self._connected_at = 0.0
        self._client = self._make_client()

    # -- public API ---------------------------------------------------------

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        with self._lock:
            self._subs[topic] = qos
            if self._connected.is_set():
                self._client.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` now if connected, and do not subscribe to it again after a reconnect."""
        with self._lock:
            if self._subs.pop(topic, None) is not None and self._connected.is_set():
                self._client.unsubscribe(topic)

    def start(self) -> None:
        """Start the network thread; it connects in the background."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.settings.client_id}", daemon=True)
        self._thread.start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                wait_s: float | None = None) -> None:
        """Queue a message for the broker; raise LinkDown when not connected.

        With ``wait_s``, block until the broker has acknowledged it (PUBACK),
        for one-shot tools that close the link right after publishing.
        """
        if not self._connected.is_set():
            raise LinkDown(f"not connected to the broker at {self._where}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkDown(f"publish on {topic} failed: {paho.error_string(info.rc)}")
        if wait_s is not None:
            try:
                info.wait_for_publish(wait_s)
            except RuntimeError as err:  # paho raises it when the connection drops meanwhile
                raise LinkDown(f"publish on {topic} not completed: {err}") from None
            if not info.is_published():
                raise LinkDown(f"the broker at {self._where} did not acknowledge {topic} within {wait_s} s")

    def ack(self, message: Incoming) -> None:
        """Send the PUBACK of ``message`` (manual_ack links only; a no-op for QoS 0).

        Raises LinkDown when not connected: the broker will deliver the
        message again after the reconnect, so it is not lost.
        """
        if not self.settings.manual_ack or message.qos == 0:
            return
        if not self._connected.is_set():
            raise LinkDown(f"cannot acknowledge message {message.mid}: not connected to {self._where}")
        rc = self._client.ack(message.mid, message.qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkDown(f"acknowledging message {message.mid} failed: {paho.error_string(rc)}")

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or ``timeout`` seconds passed; return whether connected."""
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Disconnect cleanly (the will is not sent) and stop the network thread; safe twice."""
        if self._stop.is_set():
            return
        with self._lock:
            self._stop.set()
            client = getattr(self, "_client", None)  # None after a half-built __init__
            if client is not None:
                # Queues DISCONNECT and wakes the network thread, which writes it.
                client.disconnect()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_S)
            if self._thread.is_alive():
                log.warning("network thread of %s did not stop within %.0f s", self.settings.client_id, _JOIN_S)
        self._connected.clear()

    def __enter__(self) -> MqttLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the paho client ----------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _make_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=paho.MQTTv5,
                             reconnect_on_failure=False, manual_ack=s.manual_ack)
        client.max_inflight_messages_set(s.max_inflight)
        if s.will is not None:
            client.will_set(s.will.topic, s.will.payload, qos=s.will.qos, retain=s.will.retain)
        if s.tls is not None:
            self._set_tls(client, s.tls)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        # Without loop_start() paho would write queued packets from whichever
        # thread called publish(), racing our network thread on the socket.
        # A write-registration hook makes it leave all writes to client.loop().
        client.on_socket_register_write = _loop_writes
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry_s
        client.connect_async(s.host, s.port, s.keepalive_s, clean_start=s.clean_start, properties=props)
        return client

    @staticmethod
    def _set_tls(client: paho.Client, tls: TlsSettings) -> None:
        try:
            client.tls_set(ca_certs=str(tls.ca_file), certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"TLS files {tls.ca_file}, {tls.cert_file}, {tls.key_file}: {err}") from err

    # -- the network thread -------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._connect_once():
                    self._serve()
            except NETWORK_ERRORS as err:
                log.warning("link to %s failed: %s", self._where, err)
            self._mark_down()
            self._wait_before_retry()
        log.debug("network thread of %s stopped", self.settings.client_id)

    def _connect_once(self) -> bool:
        with self._lock:
            if self._stop.is_set():
                return False
            log.info("connecting to %s as %s (attempt %d)", self._where, self.settings.client_id, self._failures + 1)
            rc = self._client.reconnect()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("connecting to %s failed: %s", self._where, paho.error_string(rc))
            return False
        return True

    def _serve(self) -> None:
        """Run the network loop until the connection ends (or close() ended it)."""
        while self._client.loop(_TICK_S) == MQTTErrorCode.MQTT_ERR_SUCCESS:
            pass

    def _wait_before_retry(self) -> None:
        if self._stop.is_set():
            return
        s = self.settings
        delay = backoff_delay(self._failures, s.backoff_min_s, s.backoff_max_s)
        self._failures += 1
        log.info("reconnecting to %s in %.2f s", self._where, delay)
        self._stop.wait(delay)

    def _mark_down(self) -> None:
        if not self._connected.is_set():
            return
        self._connected.clear()
        # A disconnect we asked for (close) is routine; one we did not is worth a warning.
        log.log(logging.INFO if self._stop.is_set() else logging.WARNING, "disconnected from %s", self._where)
        self._guarded("on_connection", self._on_connection_cb, False)

    # -- paho callbacks (network thread) -------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            log.error("broker at %s refused %s: %s", self._where, self.settings.client_id, reason)
            return
        with self._lock:
            if self._subs:
                client.subscribe(list(self._subs.items()))
            self._connected.set()
            self._connected_at = time.monotonic()
        self._failures = 0
        log.info("connected to %s (session present: %s)", self._where, flags.session_present)
        self._guarded("on_connection", self._on_connection_cb, True)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: paho.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        if reason.value == _SESSION_TAKEN_OVER:
            log.error("broker at %s: another client with id %s connected and took this session over (two "
                      "instances on one identity?)", self._where, self.settings.client_id)
        elif reason.is_failure and not self._stop.is_set() and self._connected.is_set() \
                and time.monotonic() - self._connected_at < _TAKEOVER_SUSPECT_S:
            log.error("broker at %s closed the connection %.1f s after accepting it (%s): is another client "
                      "with id %s connected? (two instances on one identity?)", self._where,
                      time.monotonic() - self._connected_at, reason, self.settings.client_id)
        elif reason.is_failure:
            log.info("broker at %s: %s", self._where, reason)
        self._mark_down()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._guarded("on_message", self._deliver, msg)

    def _deliver(self, msg: paho.MQTTMessage) -> None:
        self._on_message_cb(Incoming(topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos,
                                     retain=bool(msg.retain), mid=msg.mid, dup=bool(msg.dup)))

    def _guarded(self, what: str, callback: Callable[..., None] | None, *args: object) -> None:
        """Run one of the owner's callbacks; whatever it raises is logged, never kills the link."""
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            # The supervisor boundary: the callback is the owner's code, and a
            # bug in it must not stop ratings from syncing.
            log.exception("%s callback of %s raised; the link carries on", what, self.settings.client_id)


def _loop_writes(client: paho.Client, userdata: Any, sock: object) -> None:
    """Write-registration hook: nothing to do, the network thread's select() sees the wake-up."""

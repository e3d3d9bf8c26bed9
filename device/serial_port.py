"""A framed serial link that survives unplugging: reader, writer, heartbeats, reopen with backoff.

Both serial front ends sit on a :class:`FrameLink`. Its reader thread opens the
port, feeds what arrives to a :class:`~hcp.device.frames.FrameDecoder` and hands
each good frame to ``on_frame``. A read or open that fails (the USB device was
pulled) closes the port and retries after a random, capped, growing delay,
logging once per outage rather than once per attempt; udev's
``/dev/serial/by-id/`` names make the replugged device reappear under the
configured path. Writes go through a queue to a writer thread so that
``send()`` never blocks the agent's thread.

pyserial is imported only when a port is opened, so this module loads on any
machine.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from hcp.device.exc import FrameError, FrameProblem
from hcp.device.frames import Frame, FrameDecoder, FrameType, encode_frame
from hcp.retry import backoff_delay

log = logging.getLogger(__name__)

#: How long a read waits for the first byte; also how often timeouts are checked.
READ_TIMEOUT_S = 0.05
#: A write that cannot finish in this long is dropped (the far end stopped reading).
WRITE_TIMEOUT_S = 0.5
#: Frames queued for sending beyond this are dropped (the port is down or jammed).
SEND_QUEUE_MAX = 64
#: First reopen delay; doubles per failed attempt up to the configured cap.
BACKOFF_FIRST_S = 0.05
#: At most one frame-error warning per this many seconds; the rest are counted.
ERROR_LOG_INTERVAL_S = 10.0


class SerialLike(Protocol):
    """What the link needs of a pyserial port (``serial.Serial`` and ``serial_for_url`` ports have it)."""

    @property
    def in_waiting(self) -> int: ...
    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def cancel_read(self) -> None: ...


def open_serial(url: str, baudrate: int) -> SerialLike:
    """Open ``url`` (a device path, or a pyserial URL such as ``loop://``) 8N1 at ``baudrate``."""
    import serial  # lazy: only the machine with the port needs pyserial loaded

    # exclusive: two agents on one port would split each other's bytes.
    exclusive = True if "://" not in url else None
    return serial.serial_for_url(url, baudrate=baudrate, timeout=READ_TIMEOUT_S,
                                 write_timeout=WRITE_TIMEOUT_S, exclusive=exclusive)


class FrameLink:
    """A framed, self-healing serial link.

    ``on_frame(frame)`` is called from the reader thread for each good frame;
    ``on_health(fault)`` whenever the link's health changes (``None``: healthy,
    else a one-line description for a technician). ``heartbeat_timeout_s`` of 0
    means silence from the far end is not a fault.
    """

    def __init__(self, name: str, url: str, baudrate: int, *, on_frame: Callable[[Frame], None],
                 on_health: Callable[[str | None], None] | None = None,
                 on_connect: Callable[[], None] | None = None, heartbeat_s: float = 1.0,
                 heartbeat_timeout_s: float = 0.0, reconnect_max_s: float = 5.0,
                 opener: Callable[[str, int], SerialLike] = open_serial) -> None:
        self.name, self.url, self.baudrate = name, url, baudrate
        self._on_frame, self._on_health, self._on_connect = on_frame, on_health, on_connect
        self._heartbeat_s, self._heartbeat_timeout_s = heartbeat_s, heartbeat_timeout_s
        self._reconnect_max_s, self._opener = reconnect_max_s, opener
        self._port: SerialLike | None = None
        self._port_lock = threading.Lock()          # writer vs. reader closing the port
        self._outbox: queue.Queue[bytes | None] = queue.Queue(SEND_QUEUE_MAX)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fault: str | None = "not started"
        self._last_rx = time.monotonic()
        self._heard = self._outage_logged = False
        self._errors_unlogged, self._last_error_log = 0, 0.0
        self.frames_in = self.frames_out = self.frame_errors = 0

    # ---- public ----------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """The port is open (the far end may still be silent)."""
        return self._port is not None

    @property
    def fault(self) -> str | None:
        """Why the link is unhealthy, or None."""
        return self._fault

    def start(self) -> None:
        """Start the reader and writer threads; the port opens in the background."""
        if self._threads or self._stop.is_set():
            return
        for role, target in (("reader", self._read_loop), ("writer", self._write_loop)):
            thread = threading.Thread(target=target, name=f"hcp-{self.name}-{role}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def send(self, frame_type: int, fields: Mapping[str, Any] | None = None) -> bool:
        """Queue one frame for sending; False (and nothing sent) if the port is down or the queue full."""
        if self._port is None or self._stop.is_set():
            return False
        try:
            self._outbox.put_nowait(encode_frame(frame_type, fields))
        except queue.Full:
            log.debug("%s: send queue full, dropping a %s frame", self.name, FrameType(frame_type).name)
            return False
        return True

    def close(self) -> None:
        """Stop the threads and close the port; safe to call twice."""
        self._stop.set()
        self._put_sentinel()
        port = self._port
        if port is not None:
            self._cancel_read(port)
        for thread in getattr(self, "_threads", ()):
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        self._close_port()

    def __enter__(self) -> FrameLink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- reader ----------------------------------------------------------

    def _read_loop(self) -> None:
        attempts, outage_since = 0, time.monotonic()
        while not self._stop.is_set():
            try:
                port = self._opener(self.url, self.baudrate)
            except (OSError, ValueError) as err:  # SerialException is an OSError; ValueError: bad settings
                attempts += 1
                self._note_open_failure(err, attempts)
                self._stop.wait(self._backoff(attempts))
                continue
            self._connected(port, attempts, outage_since)
            attempts = 0
            err = self._pump(port)
            outage_since = time.monotonic()
            self._close_port()
            if err is not None and not self._stop.is_set():
                log.warning("%s: %s lost (%s); reopening", self.name, self.url, err)
                self._outage_logged = True
                self._set_fault(f"{self.url} lost: {err}")

    def _connected(self, port: SerialLike, attempts: int, outage_since: float) -> None:
        with self._port_lock:
            self._port = port
        self._last_rx, self._heard, self._outage_logged = time.monotonic(), False, False
        if attempts:
            log.info("%s: %s open again after %.1f s", self.name, self.url, time.monotonic() - outage_since)
        else:
            log.info("%s: %s open at %d baud", self.name, self.url, self.baudrate)
        # A link that expects heartbeats is healthy only once the far end is heard.
        self._set_fault(self._waiting_fault() if self._heartbeat_timeout_s else None)
        self._call(self._on_connect)

    def _note_open_failure(self, err: Exception, attempts: int) -> None:
        # Log once per outage: an unplugged board would otherwise fill the journal.
        if attempts == 1:
            level = logging.DEBUG if self._outage_logged else logging.WARNING
            log.log(level, "%s: cannot open %s (%s); retrying until it appears", self.name, self.url, err)
            self._outage_logged = True
            self._set_fault(f"{self.url} unavailable: {err}")
        else:
            log.debug("%s: open attempt %d on %s failed: %s", self.name, attempts, self.url, err)

    def _backoff(self, attempts: int) -> float:
        # Jittered: two boards replugged together do not march in step.
        return backoff_delay(attempts - 1, BACKOFF_FIRST_S, self._reconnect_max_s)

    def _pump(self, port: SerialLike) -> Exception | None:
        """Read until the port fails (returned) or the link is closed (None)."""
        decoder = FrameDecoder()
        while not self._stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (OSError, TypeError) as err:  # TypeError: pyserial's fd vanished under a concurrent close
                return err
            items = decoder.feed(data) if data else decoder.expire()
            for item in items:
                self._dispatch(item)
            self._check_silence()
        return None

    def _dispatch(self, item: Frame | FrameError) -> None:
        if isinstance(item, FrameError):
            self._note_frame_error(item)
            return
        self.frames_in += 1
        self._last_rx = time.monotonic()
        if not self._heard:
            self._heard = True
            self._set_fault(None)
        if item.type != FrameType.HEARTBEAT:
            self._call(self._on_frame, item)

    def _check_silence(self) -> None:
        if not self._heartbeat_timeout_s or time.monotonic() - self._last_rx <= self._heartbeat_timeout_s:
            return
        if self._heard:
            self._heard = False
            log.warning("%s: no heartbeat on %s for %g s", self.name, self.url, self._heartbeat_timeout_s)
            self._set_fault(f"no heartbeat on {self.url} for {self._heartbeat_timeout_s:g} s")
        elif self._fault == self._waiting_fault():
            log.warning("%s: nothing heard on %s since it opened", self.name, self.url)
            self._set_fault(f"nothing heard on {self.url} since it opened")

    def _waiting_fault(self) -> str:
        return f"{self.url} open, waiting for the first frame"

    def _note_frame_error(self, error: FrameError) -> None:
        self.frame_errors += 1
        now = time.monotonic()
        if now - self._last_error_log < ERROR_LOG_INTERVAL_S:
            self._errors_unlogged += 1
            return
        more = f" ({self._errors_unlogged} more since the last report)" if self._errors_unlogged else ""
        level = logging.DEBUG if error.problem is FrameProblem.GARBAGE else logging.WARNING
        log.log(level, "%s: %s%s", self.name, error, more)
        self._errors_unlogged, self._last_error_log = 0, now

    # ---- writer ----------------------------------------------------------

    def _write_loop(self) -> None:
        next_beat = time.monotonic()
        while not self._stop.is_set():
            try:
                data = self._outbox.get(timeout=max(0.0, next_beat - time.monotonic()))
            except queue.Empty:
                data = encode_frame(FrameType.HEARTBEAT)
                next_beat = time.monotonic() + self._heartbeat_s
            if data is not None:
                self._write(data)

    def _write(self, data: bytes) -> None:
        with self._port_lock:
            port = self._port
            if port is None:
                return
            try:
                port.write(data)
                self.frames_out += 1
            except (OSError, TypeError) as err:
                # The reader notices a dead port and reopens; a jammed one just loses this frame.
                log.debug("%s: write failed (%s), frame dropped", self.name, err)

    # ---- helpers ---------------------------------------------------------

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except OSError as err:
                log.debug("%s: closing %s: %s", self.name, self.url, err)

    def _cancel_read(self, port: SerialLike) -> None:
        # Wakes the reader out of its select() so close() is prompt.
        with contextlib.suppress(OSError, AttributeError, TypeError):
            port.cancel_read()

    def _put_sentinel(self) -> None:
        outbox = getattr(self, "_outbox", None)
        if outbox is not None:
            # A full queue is fine: the writer checks the stop flag after each frame anyway.
            with contextlib.suppress(queue.Full):
                outbox.put_nowait(None)

    def _set_fault(self, fault: str | None) -> None:
        if fault == self._fault:
            return
        self._fault = fault
        self._call(self._on_health, fault)

    def _call(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            # The reader thread is the terminal's only ear on this port: a bug in a
            # handler is logged with its traceback and the link keeps listening.
            log.exception("%s: handler %r failed", self.name, callback)

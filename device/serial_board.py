"""The serial button board: a microcontroller with the five star keys and their LEDs on USB-serial.

The board debounces its own keys and sends a ``KEY`` frame per press; the
terminal answers with ``LED`` and ``BEEP`` frames. Both sides send a
``HEARTBEAT`` every second; a board silent for ``heartbeat_timeout_s`` is a
fault (log line, :attr:`SerialBoard.fault`, ``when_fault``). On every (re)open
the terminal asks for the firmware version and repeats the LED and status
state, since a replugged board has forgotten it. ``docs/serial-protocol.md``
has the frames.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hcp.agent.events import (
    Command,
    Feedback,
    PlaySound,
    PostEvent,
    ShowScreen,
    Sound,
    StarPressed,
    StatusLight,
    lit_keys,
)
from hcp.device.exc import FrameError
from hcp.device.frames import Frame, FrameType
from hcp.device.serial_port import FrameLink, SerialLike, open_serial

if TYPE_CHECKING:
    from hcp.config.schema import AgentConfig

log = logging.getLogger(__name__)

ALL_KEYS = (1, 2, 3, 4, 5)
#: Screens on which the star keys are live, so all their LEDs are lit to invite a press.
ERROR_BEEP_MS = 400


@dataclass(frozen=True)
class BoardVersion:
    """What the board says it is (answer to ``VERSION_QUERY``)."""

    firmware: str
    hardware: str = ""
    protocol: int = 1
    keys: int = 5


class SerialBoard:
    """Front end for the serial button board; see the module docstring.

    ``when_fault(detail)`` is called from the reader thread when the board is
    lost or silent (``detail`` says why) and with ``None`` when it is back.
    """

    def __init__(self, port: str, baudrate: int = 115200, *, heartbeat_s: float = 1.0,
                 heartbeat_timeout_s: float = 3.5, beep_ms: int = 80, reconnect_max_s: float = 5.0,
                 opener: Callable[[str, int], SerialLike] = open_serial) -> None:
        self.when_fault: Callable[[str | None], None] | None = None
        self.version: BoardVersion | None = None
        self._post: PostEvent | None = None
        self._beep_ms = beep_ms
        self._leds: tuple[int, ...] = ()
        self._light = StatusLight.IDLE
        self._version_seen = threading.Event()
        self._link = FrameLink("serial-board", port, baudrate, on_frame=self._on_frame,
                               on_health=self._on_health, on_connect=self._on_connect,
                               heartbeat_s=heartbeat_s, heartbeat_timeout_s=heartbeat_timeout_s,
                               reconnect_max_s=reconnect_max_s, opener=opener)

    @classmethod
    def from_config(cls, config: AgentConfig) -> SerialBoard:
        """The board as ``config.serial_board`` describes it."""
        section = config.serial_board
        return cls(section.port, section.baudrate, heartbeat_s=section.heartbeat_s,
                   heartbeat_timeout_s=section.heartbeat_timeout_s, beep_ms=section.beep_ms,
                   reconnect_max_s=section.reconnect_max_s)

    # ---- FrontEnd ----------------------------------------------------------

    def start(self, post: PostEvent) -> None:
        """Open the port in the background and post a StarPressed per key press."""
        self._post = post
        self._link.start()

    def perform(self, command: Command) -> None:
        """Light keys and beep; never blocks (frames are queued to the writer thread)."""
        if isinstance(command, Feedback):
            self._set_leds(() if command.score is None else (command.score,))
            if command.beep:
                self._beep(self._beep_ms)
        elif isinstance(command, ShowScreen):
            self._set_leds(lit_keys(command))
        elif isinstance(command, PlaySound) and command.sound in (Sound.BEEP, Sound.ERROR):
            self._beep(ERROR_BEEP_MS if command.sound is Sound.ERROR else self._beep_ms)

    def show_status(self, light: StatusLight, detail: str) -> None:
        """Pass the status pattern on; a board with a status LED shows it."""
        self._light = light
        self._link.send(FrameType.STATUS, {"light": light.value})

    def close(self) -> None:
        """Stop the link and close the port; safe to call twice."""
        link = getattr(self, "_link", None)
        if link is not None:
            link.close()

    def __enter__(self) -> SerialBoard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- state -------------------------------------------------------------

    @property
    def fault(self) -> str | None:
        """Why the board is unusable (unplugged, silent), or None."""
        return self._link.fault

    @property
    def is_connected(self) -> bool:
        """The port is open and the board has been heard since."""
        return self._link.is_connected and self._link.fault is None

    def wait_for_version(self, timeout: float | None = None) -> BoardVersion | None:
        """Block until the board has told its version (asked on every open); None on timeout."""
        self._version_seen.wait(timeout)
        return self.version

    # ---- link callbacks (reader thread) -----------------------------------

    def _on_connect(self) -> None:
        self.version = None
        self._version_seen.clear()
        self._link.send(FrameType.VERSION_QUERY)
        self._link.send(FrameType.LED, {"on": list(self._leds)})
        self._link.send(FrameType.STATUS, {"light": self._light.value})

    def _on_health(self, fault: str | None) -> None:
        if self.when_fault is not None:
            self.when_fault(fault)

    def _on_frame(self, frame: Frame) -> None:
        try:
            fields = frame.fields()
            if frame.type == FrameType.KEY:
                self._on_key(fields)
            elif frame.type == FrameType.VERSION:
                self._on_version(fields)
            else:
                log.debug("serial board: ignoring a %s frame", frame.name)
        except FrameError as err:
            log.warning("serial board: %s", err)

    def _on_key(self, fields: dict[str, Any]) -> None:
        key = fields.get("key")
        # bool is an int in Python; a board sending true is broken, not pressing key 1.
        if not isinstance(key, int) or isinstance(key, bool) or key not in ALL_KEYS:
            log.warning("serial board: KEY frame with key %r (expected 1-5), ignored", key)
            return
        if self._post is not None:
            self._post(StarPressed(key))

    def _on_version(self, fields: dict[str, Any]) -> None:
        self.version = BoardVersion(firmware=str(fields.get("fw", "")), hardware=str(fields.get("hw", "")),
                                    protocol=_int(fields.get("proto"), 1), keys=_int(fields.get("keys"), 5))
        log.info("serial board: firmware %s, hardware %s, protocol %d, %d keys", self.version.firmware,
                 self.version.hardware or "?", self.version.protocol, self.version.keys)
        self._version_seen.set()

    # ---- output ------------------------------------------------------------

    def _set_leds(self, keys: tuple[int, ...]) -> None:
        self._leds = keys
        self._link.send(FrameType.LED, {"on": list(keys)})

    def _beep(self, ms: int) -> None:
        if ms > 0:
            self._link.send(FrameType.BEEP, {"ms": ms})


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default

"""The GPIO button panel: five star keys with LEDs, the clerk's 请评价 button, a status LED, a buzzer.

Everything is a gpiozero device built on an injected pin factory (``pin_factory=``;
tests pass ``gpiozero.pins.mock.MockFactory()``). gpiozero is imported only
when a panel is built, so this module loads on any machine.

Key rules, the same on real pins and mock pins:

* **Bounce.** Debouncing is done here, not by the pin factory (the mock pins
  ignore ``bounce_time`` and real factories differ): an edge of a key within
  ``bounce_s`` of that key's last accepted edge is ignored.
* **One key at a time.** A star press counts only if no other star key is down
  at that moment. So the first of two keys wins, and two keys going down
  together (each sees the other down) are both ignored as ambiguous — a palm on
  the panel rates nothing.
* **Stuck keys.** A key held longer than ``stuck_s`` is reported once (a log
  line, :attr:`GpioPanel.fault`, ``when_fault``, the status LED's fault
  pattern) and stops blocking the other keys until it is released. Its press
  was posted once, when it went down, and is never repeated.
* **Presses are always posted**, inside a prompt or not: whether a press means
  anything is the state machine's decision; its ``Feedback`` lights the key.
* **The 请评价 button** posts a :class:`ClerkTrigger` whose prompt has no case
  ids (see :func:`hcp.device.clerk_link.button_prompt`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hcp.agent.events import (
    ClerkTrigger,
    Command,
    Event,
    Feedback,
    PlaySound,
    PostEvent,
    ShowScreen,
    Sound,
    StarPressed,
    StatusLight,
    lit_keys,
)
from hcp.device.clerk_link import Clerk, button_prompt
from hcp.device.exc import PinError

if TYPE_CHECKING:
    from gpiozero import Button
    from gpiozero.pins import Factory

    from hcp.config.schema import AgentConfig

log = logging.getLogger(__name__)

#: Status LED (on seconds, off seconds) per light; ``None`` off time means steady on.
STATUS_PATTERNS: dict[StatusLight, tuple[float, float | None]] = {
    StatusLight.IDLE: (1.0, None),          # steady: all is well
    StatusLight.PROMPTED: (0.5, 0.5),       # 1 Hz: a citizen is being asked
    StatusLight.OFFLINE: (0.2, 1.8),        # a short flash every 2 s: ratings are queued, not lost
    StatusLight.FAULT: (0.1, 0.1),          # 5 Hz: call a technician
}
#: Screens on which the star keys are live, so their LEDs are all lit to invite a press.
ERROR_BEEP_S = 0.4


@dataclass(eq=False)
class _Key:
    """One physical key and what the panel remembers about it."""

    name: str                 # "star 3" or "trigger", for log lines
    pin: int
    button: Button
    score: int | None         # None: the trigger
    last_edge: float = float("-inf")
    stuck: bool = False
    watchdog: threading.Timer | None = None


class GpioPanel:
    """Front end for the GPIO panel; see the module docstring.

    ``when_fault(detail)`` is called when a key gets stuck (``detail`` says
    which) and with ``None`` when none is stuck any more.
    """

    def __init__(self, star_pins: tuple[int, ...], *, star_led_pins: tuple[int, ...] | None = None,
                 trigger_pin: int | None = None, status_led_pin: int | None = None,
                 buzzer_pin: int | None = None, pull_up: bool = True, led_active_high: bool = True,
                 buzzer_active_high: bool = True, bounce_s: float = 0.03, stuck_s: float = 10.0,
                 beep_s: float = 0.08, item_code: str = "unknown", item_name: str = "窗口服务",
                 clerk_id: str = "unknown", pin_factory: Factory | None = None) -> None:
        self._devices: list[Any] = []   # first, so close() works after a half-built __init__
        self._keys: dict[Any, _Key] = {}
        self._lock = threading.Lock()   # key state: gpiozero's event and hold threads
        self._post: PostEvent | None = None
        self._bounce_s, self._stuck_s, self._beep_s = bounce_s, stuck_s, beep_s
        self._item_code, self._item_name, self._clerk_id = item_code, item_name, clerk_id
        self._light, self._fault = StatusLight.IDLE, None
        self._pattern: tuple[float, float | None] | None = None
        self.clerk: Clerk | None = None
        self.when_fault: Callable[[str | None], None] | None = None
        try:
            self._build(star_pins, star_led_pins, trigger_pin, status_led_pin, buzzer_pin, pull_up,
                        led_active_high, buzzer_active_high, pin_factory)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, config: AgentConfig, *, pin_factory: Factory | None = None) -> GpioPanel:
        """The panel as ``config.gpio`` describes it."""
        g = config.gpio
        return cls(g.star_pins, star_led_pins=g.star_led_pins, trigger_pin=g.trigger_pin,
                   status_led_pin=g.status_led_pin, buzzer_pin=g.buzzer_pin, pull_up=g.pull_up,
                   led_active_high=g.led_active_high, buzzer_active_high=g.buzzer_active_high,
                   bounce_s=g.bounce_ms / 1000, stuck_s=g.stuck_s, beep_s=g.beep_ms / 1000,
                   item_code=g.item_code, item_name=g.item_name, clerk_id=g.clerk_id, pin_factory=pin_factory)

    # ---- building ----------------------------------------------------------

    def _build(self, star_pins: tuple[int, ...], star_led_pins: tuple[int, ...] | None, trigger_pin: int | None,
               status_led_pin: int | None, buzzer_pin: int | None, pull_up: bool, led_active_high: bool,
               buzzer_active_high: bool, factory: Factory | None) -> None:
        import gpiozero  # lazy: only a Pi (or a test with mock pins) needs it

        def claim(role: str, pin: int, make: Callable[[], Any]) -> Any:
            try:
                device = make()
            except gpiozero.GPIOZeroError as err:  # translated at the boundary: the technician gets one line
                raise PinError(f"GPIO {pin} ({role}): {err}") from err
            self._devices.append(device)
            return device

        def button(role: str, pin: int, score: int | None) -> None:
            # bounce_time=None: debouncing is ours (see the module docstring).
            # No gpiozero hold_time either: its hold thread cannot be interrupted, so closing a
            # panel with a stuck key would wait out the whole stuck time; our timer is cancelled.
            made = claim(role, pin, lambda: gpiozero.Button(pin, pull_up=pull_up, bounce_time=None,
                                                            pin_factory=factory))
            self._keys[made] = _Key(role, pin, made, score)

        def output(role: str, pin: int | None, kind: type, active_high: bool) -> Any:
            if pin is None:
                return None
            return claim(role, pin, lambda: kind(pin, active_high=active_high, initial_value=False,
                                                 pin_factory=factory))

        for score, pin in enumerate(star_pins, start=1):
            button(f"star {score}", pin, score)
        if trigger_pin is not None:
            button("trigger", trigger_pin, None)
        self._leds = [output(f"star {n} LED", pin, gpiozero.LED, led_active_high)
                      for n, pin in enumerate(star_led_pins or (), start=1)]
        self._status_led = output("status LED", status_led_pin, gpiozero.LED, led_active_high)
        self._buzzer = output("buzzer", buzzer_pin, gpiozero.Buzzer, buzzer_active_high)

    # ---- FrontEnd ----------------------------------------------------------

    def start(self, post: PostEvent) -> None:
        """Post events from now on: StarPressed per star press, ClerkTrigger per 请评价 press."""
        self._post = post
        for button in self._keys:
            button.when_pressed = self._on_press
            button.when_released = self._on_release
        self._apply_status()

    def perform(self, command: Command) -> None:
        """Light keys, beep; never blocks (gpiozero blinks and beeps in its own threads)."""
        if self.closed:
            return
        if isinstance(command, Feedback):
            self._light_keys(() if command.score is None else (command.score,))
            if command.beep:
                self._beep(self._beep_s)
        elif isinstance(command, ShowScreen):
            self._light_keys(lit_keys(command))
        elif isinstance(command, PlaySound) and command.sound in (Sound.BEEP, Sound.ERROR):
            self._beep(ERROR_BEEP_S if command.sound is Sound.ERROR else self._beep_s)

    def show_status(self, light: StatusLight, detail: str) -> None:
        """Show the runtime's light on the status LED, unless a stuck key overrides it with FAULT."""
        self._light = light
        self._apply_status()

    def close(self) -> None:
        """Release every pin; safe to call twice and after a failed ``__init__``."""
        self._post = None
        for key in self._keys.values():
            self._stop_watchdog(key)
        devices, self._devices = self._devices, []
        for device in reversed(devices):
            device.close()

    def __enter__(self) -> GpioPanel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- state -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """The pins have been released."""
        return not self._devices

    @property
    def fault(self) -> str | None:
        """Which keys are stuck, or None."""
        return self._fault

    @property
    def stuck_keys(self) -> tuple[str, ...]:
        """Names of the keys held past ``stuck_s`` and not yet released."""
        return tuple(key.name for key in self._keys.values() if key.stuck)

    # ---- key events (gpiozero's threads) ----------------------------------

    def _on_press(self, button: Button) -> None:
        key = self._keys[button]
        with self._lock:
            if not self._accept_edge(key):
                return
            alone = self._alone(key)
        if alone:
            self._emit(StarPressed(key.score) if key.score is not None else self._trigger())
        with self._lock:  # after the post: starting a thread would delay the feedback
            self._start_watchdog(key)

    def _on_release(self, button: Button) -> None:
        key = self._keys[button]
        with self._lock:
            if not self._accept_edge(key):
                return
            self._stop_watchdog(key)
            if not key.stuck:
                return
            key.stuck = False
        log.info("GPIO panel: %s (GPIO %d) released, no longer stuck", key.name, key.pin)
        self._update_fault()

    def _on_stuck(self, key: _Key) -> None:
        with self._lock:
            # A release lost in the bounce window leaves the watchdog running: ask the pin.
            if key.stuck or self.closed or not key.button.is_pressed:
                return
            key.stuck = True
        log.warning("GPIO panel: %s (GPIO %d) held for over %g s: stuck? ignored until released",
                    key.name, key.pin, self._stuck_s)
        self._update_fault()

    def _start_watchdog(self, key: _Key) -> None:
        self._stop_watchdog(key)
        key.watchdog = threading.Timer(self._stuck_s, self._on_stuck, (key,))
        key.watchdog.daemon = True
        key.watchdog.start()

    def _stop_watchdog(self, key: _Key) -> None:
        if key.watchdog is not None:
            key.watchdog.cancel()
            key.watchdog = None

    def _accept_edge(self, key: _Key) -> bool:
        now = time.monotonic()
        if now - key.last_edge < self._bounce_s:
            return False  # contact bounce
        key.last_edge = now
        return True

    def _alone(self, key: _Key) -> bool:
        if key.score is None:
            return True  # the clerk's button is not the citizen's: never ambiguous with a star
        others = [k.name for k in self._keys.values()
                  if k is not key and k.score is not None and not k.stuck and k.button.is_pressed]
        if others:
            log.info("GPIO panel: %s pressed while %s down: ignored as ambiguous", key.name, ", ".join(others))
        return not others

    def _trigger(self) -> ClerkTrigger:
        clerk = self.clerk
        clerk_id = clerk.employee_no if clerk else self._clerk_id
        return ClerkTrigger(button_prompt(self._item_code, self._item_name, clerk_id,
                                          clerk.name if clerk else None))

    def _emit(self, event: Event) -> None:
        post = self._post
        if post is not None:
            post(event)

    # ---- outputs -----------------------------------------------------------

    def _light_keys(self, lit: tuple[int, ...]) -> None:
        for score, led in enumerate(self._leds, start=1):
            if score in lit:
                led.on()
            else:
                led.off()

    def _beep(self, seconds: float) -> None:
        if self._buzzer is not None and seconds > 0:
            self._buzzer.blink(on_time=seconds, off_time=0, n=1, background=True)

    def _update_fault(self) -> None:
        stuck = self.stuck_keys
        fault = f"stuck key: {', '.join(stuck)}" if stuck else None
        if fault == self._fault:
            return
        self._fault = fault
        self._apply_status()
        if self.when_fault is not None:
            self.when_fault(fault)

    def _apply_status(self) -> None:
        led = self._status_led
        pattern = STATUS_PATTERNS[StatusLight.FAULT if self._fault else self._light]
        # Restarting an unchanged blink would jerk its phase on every status refresh.
        if led is None or self.closed or pattern == self._pattern:
            return
        self._pattern = pattern
        on_s, off_s = pattern
        if off_s is None:
            led.on()
        else:
            led.blink(on_time=on_s, off_time=off_s, background=True)

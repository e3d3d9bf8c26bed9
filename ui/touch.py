"""The touchscreen front end: a pygame window on the evaluator's panel, drawn by a thread of its own.

``perform`` only records the wanted :class:`ViewState` and wakes the UI thread,
so the agent never waits for drawing. The UI thread redraws only when the state
changed (and only the changed keys when it can), pumps touches at a modest rate
and otherwise sleeps, so an idle terminal costs next to no CPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hcp.agent.events import Command, Feedback, PlaySound, PostEvent, Screen, ShowScreen, Sound, StatusLight
from hcp.agent.frontends import has_star_keys
from hcp.ui.exc import DisplayError
from hcp.ui.fonts import Fonts
from hcp.ui.layout import Layout, to_logical
from hcp.ui.receipt import ReceiptMaker
from hcp.ui.screens import TECHNICIAN, Clerk, Frame, LocalAction, Renderer, TechInfo, ViewState
from hcp.ui.settings import DisplaySection, ReceiptSection, VoiceSection
from hcp.ui.voice import Voice

if TYPE_CHECKING:
    import pygame

log = logging.getLogger(__name__)

#: How often the UI thread pumps touches when nothing else wakes it: 25 ms keeps a touch snappy
#: while an idle loop costs a fraction of a percent of one core (SDL's own wait polls every 1 ms).
#: How often the UI thread looks for touches. Measured (bench/ui_bench.py): 25 ms gives
#: touch → feedback drawn in ~26 ms at 0.7 % idle CPU; a 60 Hz poll ~18 ms at 1.2 %; SDL's
#: own event wait ~3 ms but 3.3 %, as it polls every millisecond on the dummy and KMSDRM
#: drivers. Well under what a person notices, so idle CPU wins.
POLL_S = 0.025
#: Five taps on the top-left corner within this many seconds open the technician screen.
TECH_TAPS, TECH_WINDOW_S = 5, 3.0
#: Screens that close the technician screen: a citizen is about to look at the panel.
_CITIZEN_SCREENS = {Screen.PROMPT, Screen.REASONS, Screen.HALL, Screen.THANKS, Screen.EXPIRED}


class TouchScreen:
    """The evaluator's touchscreen: screens, touches, receipt QR and voice."""

    def __init__(self, display: DisplaySection | None = None, receipt: ReceiptSection | None = None,
                 voice: VoiceSection | None = None, *, hall_name: str = "政务服务大厅", window_name: str = "",
                 device_id: str = "", dimensions: tuple[str, ...] = (), star_keys: bool = False,
                 fonts: Fonts | None = None, clock: Callable[[], float] = time.time) -> None:
        self._thread: threading.Thread | None = None  # first, so close() works after a failed __init__
        self._stop = threading.Event()
        self.display = display or DisplaySection()
        receipt = receipt or ReceiptSection()
        key = receipt.load_key()
        self._receipts = ReceiptMaker(receipt.url_template, key, receipt.valid_s) if key else None
        if receipt.enabled and key is None:
            log.warning("receipt.enabled but no receipt.key_file or key: the thanks and expired screens show no "
                        "QR (set the key shared with the rating page, or receipt.enabled = false)")
        self._fonts = fonts or Fonts.find(self.display.font_file, self.display.font_index)
        self._voice = Voice(voice)
        self._dimensions = tuple(dimensions)
        self._clock = clock
        self._lock = threading.Lock()  # guards the wanted state only: held for microseconds
        self._draw_lock = threading.Lock()  # guards the renderer and its surface during a draw
        self._drawn = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._sounds: deque[Sound] = deque(maxlen=8)
        self._want = ViewState(hall_name=hall_name, window_name=window_name, star_keys=star_keys,
                               tech=TechInfo(device_id=device_id, version=_version()))
        self._technician = False
        self._taps: deque[float] = deque(maxlen=TECH_TAPS)
        self._version = self._drawn_version = 0
        self._startup_error: BaseException | None = None
        self._ready = threading.Event()
        self._post: PostEvent | None = None
        self._renderer: Renderer | None = None

    @classmethod
    def from_config(cls, config: Any) -> TouchScreen:
        """A touchscreen from the whole agent config (display, receipt, voice, device, policy)."""
        profile = config.policy.load()
        return cls(config.display, config.receipt, config.voice, hall_name=config.device.hall_name,
                   window_name=config.device.window_name, device_id=config.device.id,
                   dimensions=tuple(profile.dimensions), star_keys=has_star_keys(config.frontend.kinds))

    # ---- FrontEnd -------------------------------------------------------------

    def start(self, post: PostEvent) -> None:
        """Open the window on the UI thread; raise :class:`DisplayError` if it does not come up."""
        if self._thread is not None:
            return
        self._post = post
        self._thread = threading.Thread(target=self._run, name="hcp-ui", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise DisplayError("the UI thread did not open the display within 15 s")
        if self._startup_error is not None:
            raise DisplayError(f"cannot open the display: {self._startup_error}") from self._startup_error

    def perform(self, command: Command) -> None:
        """Record what the panel should show or play; never blocks on drawing."""
        if isinstance(command, ShowScreen):
            if command.screen in _CITIZEN_SCREENS:
                with self._lock:
                    self._technician = False
            self._update(**self._screen_fields(command))
        elif isinstance(command, Feedback):
            self._update(lit=command.score)
            if command.beep:
                self._queue(Sound.BEEP)
        elif isinstance(command, PlaySound):
            self._queue(command.sound)

    def show_status(self, light: StatusLight, detail: str) -> None:
        """Show the terminal's health: the dot in the header and the technician screen's lines."""
        self._update(light=light, detail=detail)

    def set_volume(self, volume: float) -> None:
        """The voice's volume from now on (remote settings)."""
        self._voice.set_volume(volume)

    def close(self) -> None:
        """Close the window and the audio device; safe to call twice."""
        thread, self._thread = getattr(self, "_thread", None), None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout=5)

    def __enter__(self) -> TouchScreen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- what other parts of the terminal tell the screen ------------------------

    def set_clerk(self, name: str | None, employee_no: str = "", photo_path: Path | str | None = None) -> None:
        """Show the clerk now at the window on the idle screen (None: nobody signed in)."""
        clerk = Clerk(name, employee_no, Path(photo_path) if photo_path else None) if name else None
        self._update(clerk=clerk)

    def set_diagnostics(self, link: str | None = None, outbox_depth: int | None = None) -> None:
        """Update the technician screen's link state and outbox depth."""
        with self._lock:
            tech = self._want.tech
        self._update(tech=replace(tech, link=link or tech.link,
                                  outbox_depth=tech.outbox_depth if outbox_depth is None else outbox_depth))

    def show_technician(self, visible: bool = True) -> None:
        """Open or close the technician screen (also: five taps on the top-left corner)."""
        with self._lock:
            self._technician = visible
            self._version += 1
        self._wake.set()

    # ---- for tests and benchmarks --------------------------------------------------

    @property
    def state(self) -> ViewState:
        """The state the panel should show (drawn soon if not already)."""
        with self._lock:
            return self._visible()

    @property
    def frame(self) -> Frame | None:
        """What the last draw put where (texts, touch targets)."""
        return self._renderer.frame if self._renderer else None

    def wait_for_redraw(self, timeout: float = 5.0) -> bool:
        """Block until everything recorded so far has been drawn; False on timeout."""
        with self._drawn:
            return self._drawn.wait_for(lambda: self._drawn_version >= self._version, timeout)

    def screenshot(self) -> pygame.Surface:
        """A copy of the logical picture (before any rotation), taken between draws."""
        with self._draw_lock:
            assert self._renderer is not None, "start() first"
            return self._renderer.canvas.surface.copy()

    # ---- state, on the caller's thread -------------------------------------------------

    def _screen_fields(self, command: ShowScreen) -> dict[str, Any]:
        url = None
        prompt = command.prompt
        if command.screen in (Screen.THANKS, Screen.EXPIRED) and self._receipts and prompt and prompt.case_ids:
            # Batches are rated once, so the first case id stands for the whole prompt.
            url = self._receipts.url(prompt.case_ids[0], self._clock())
        return {"screen": command.screen, "prompt": command.prompt, "score": command.score,
                "reasons": command.reasons or self._dimensions, "selected": command.selected, "page": command.page,
                "message": command.message, "lit": None, "receipt_url": url}

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._want = replace(self._want, **changes)
            self._version += 1
        self._wake.set()

    def _queue(self, sound: Sound) -> None:
        self._sounds.append(sound)  # deque.append is atomic: no lock needed
        self._wake.set()

    def _visible(self) -> ViewState:
        return replace(self._want, screen=TECHNICIAN) if self._technician else self._want

    # ---- the UI thread -----------------------------------------------------------------

    def _run(self) -> None:
        import pygame

        try:
            window, canvas = self._open_window(pygame)
        except (pygame.error, OSError) as err:
            self._startup_error = err
            self._ready.set()
            return
        self._voice.open()
        self._ready.set()
        try:
            self._loop(pygame, window, canvas)
        finally:
            self._voice.close()
            pygame.display.quit()

    def _open_window(self, pygame: Any) -> tuple[pygame.Surface, pygame.Surface]:
        pygame.display.init()
        logical = self.display.logical_size
        size = logical[::-1] if self.display.rotate in (90, 270) else logical
        flags = pygame.FULLSCREEN | pygame.NOFRAME if self.display.fullscreen else 0
        window = pygame.display.set_mode(size, flags)
        pygame.display.set_caption("好差评")
        pygame.mouse.set_visible(not self.display.hide_cursor)
        # Only touches and window events matter: mouse motion would wake the loop for nothing.
        pygame.event.set_allowed(None)
        pygame.event.set_allowed([pygame.QUIT, pygame.MOUSEBUTTONDOWN, pygame.FINGERDOWN, pygame.WINDOWEXPOSED])
        canvas = window if self.display.rotate == 0 else pygame.Surface(logical)
        layout = Layout(logical, self.display.min_touch_px, self.display.large_text)
        with self._draw_lock:
            self._renderer = Renderer(canvas, self._fonts, layout)
        return window, canvas

    def _loop(self, pygame: Any, window: pygame.Surface, canvas: pygame.Surface) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            for event in pygame.event.get():
                self._handle(pygame, event, window)
            while self._sounds:
                self._voice.play(self._sounds.popleft())
            self._redraw(pygame, window, canvas)

    def _redraw(self, pygame: Any, window: pygame.Surface, canvas: pygame.Surface) -> None:
        with self._lock:
            if self._drawn_version >= self._version:
                return
            version, state = self._version, self._visible()
        with self._draw_lock:
            assert self._renderer is not None
            frame = self._renderer.draw(state)
            if canvas is window:
                pygame.display.update(frame.dirty)
            else:
                window.blit(pygame.transform.rotate(canvas, self.display.rotate), (0, 0))
                pygame.display.flip()
        with self._drawn:
            self._drawn_version = version
            self._drawn.notify_all()

    def _handle(self, pygame: Any, event: Any, window: pygame.Surface) -> None:
        if event.type == pygame.WINDOWEXPOSED:
            self._invalidate()
            return
        if event.type == pygame.FINGERDOWN:
            pos = (round(event.x * window.get_width()), round(event.y * window.get_height()))
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and not getattr(event, "touch", False):
            # SDL also reports a finger as a mouse click (touch=True); the FINGERDOWN was handled already.
            pos = event.pos
        else:
            return
        self._touched(to_logical(pos, self.display.rotate, self.display.logical_size))

    def _touched(self, pos: tuple[int, int]) -> None:
        target = self._renderer.frame.hit(pos) if self._renderer else None
        if isinstance(target, LocalAction):
            self._local(target)
        elif target is not None and self._post is not None:
            self._post(target)

    def _local(self, action: LocalAction) -> None:
        if action.name == "technician-exit":
            self.show_technician(False)
            return
        now = time.monotonic()
        self._taps.append(now)
        if len(self._taps) == TECH_TAPS and now - self._taps[0] <= TECH_WINDOW_S:
            self._taps.clear()
            self.show_technician(True)

    def _invalidate(self) -> None:
        with self._draw_lock:
            if self._renderer is not None:
                self._renderer.invalidate()
        with self._lock:
            self._version += 1


def _version() -> str:
    try:
        return metadata.version("hcp")
    except metadata.PackageNotFoundError:
        return "unknown"

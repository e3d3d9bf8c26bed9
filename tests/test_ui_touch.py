"""The TouchScreen front end on SDL's dummy driver: touches in, screens out, never blocking the agent."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pygame
import pytest
import zxingcpp

from hcp.agent.events import Event, Feedback, ReasonToggled, Screen, ShowScreen, StarPressed, StatusLight
from hcp.config.schema import DeviceSection, FrontendSection, PolicySection
from hcp.ui.layout import to_logical
from hcp.ui.receipt import verify
from hcp.ui.samples import DIMENSIONS, PROMPT
from hcp.ui.screens import TECHNICIAN
from hcp.ui.settings import DisplaySection, ReceiptSection, VoiceSection
from hcp.ui.touch import TouchScreen

KEY = "test-key-0123456789abcdef0123456789"
NOW = 1767225600.0


def decode_qr(surface: pygame.Surface) -> list[str]:
    width, height = surface.get_size()
    green = pygame.image.tobytes(surface, "RGB")[1::3]
    return [code.text for code in zxingcpp.read_barcodes(memoryview(green).cast("B", (height, width)))]


class Panel:
    """A started TouchScreen and the events it posted."""

    def __init__(self, screen: TouchScreen) -> None:
        self.screen = screen
        self.events: queue.Queue[Event] = queue.Queue()
        screen.start(self.events.put)

    def show(self, command: ShowScreen | Feedback) -> None:
        self.screen.perform(command)
        assert self.screen.wait_for_redraw()

    def touch(self, pos: tuple[int, int], kind: int = pygame.MOUSEBUTTONDOWN) -> None:
        if kind == pygame.MOUSEBUTTONDOWN:
            pygame.event.post(pygame.event.Event(kind, pos=pos, button=1))
        else:
            width, height = pygame.display.get_surface().get_size()
            pygame.event.post(pygame.event.Event(kind, x=pos[0] / width, y=pos[1] / height, touch_id=0,
                                                 finger_id=0, dx=0, dy=0, pressure=1))

    def next_event(self, timeout: float = 2.0) -> Event:
        return self.events.get(timeout=timeout)

    def target(self, wanted: object) -> pygame.Rect:
        assert self.screen.frame is not None
        return next(rect for rect, target in self.screen.frame.hits if target == wanted)


def make(display: DisplaySection | None = None, **kwargs: object) -> TouchScreen:
    display = display or DisplaySection(fullscreen=False)
    receipt = ReceiptSection(key=KEY)
    return TouchScreen(display, receipt, VoiceSection(), hall_name="测试大厅", window_name="3号窗口",
                       device_id="hall01-w03", clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def panel() -> Iterator[Panel]:
    with make() as screen:
        yield Panel(screen)


def test_touching_star_four_posts_star_pressed(panel: Panel) -> None:
    panel.show(ShowScreen(Screen.PROMPT, prompt=PROMPT))
    panel.touch(panel.target(StarPressed(4)).center)
    assert panel.next_event() == StarPressed(4)


def test_finger_touch_posts_once(panel: Panel) -> None:
    panel.show(ShowScreen(Screen.PROMPT, prompt=PROMPT))
    center = panel.target(StarPressed(2)).center
    panel.touch(center, pygame.FINGERDOWN)
    # SDL echoes a finger as a mouse click marked touch=True: it must not count twice.
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=center, button=1, touch=True))
    assert panel.next_event() == StarPressed(2)
    with pytest.raises(queue.Empty):
        panel.next_event(timeout=0.3)


def test_reason_toggle_posts(panel: Panel) -> None:
    panel.show(ShowScreen(Screen.REASONS, prompt=PROMPT, score=1, reasons=DIMENSIONS))
    panel.touch(panel.target(ReasonToggled("办事效率")).center)
    assert panel.next_event() == ReasonToggled("办事效率")
    panel.show(ShowScreen(Screen.REASONS, prompt=PROMPT, score=1, reasons=DIMENSIONS, selected=("办事效率",)))
    assert "✓ 办事效率" in [item.text for item in panel.screen.frame.texts]


def test_touch_outside_targets_posts_nothing(panel: Panel) -> None:
    panel.show(ShowScreen(Screen.PROMPT, prompt=PROMPT))
    panel.touch((400, 100))  # the subtitle
    with pytest.raises(queue.Empty):
        panel.next_event(timeout=0.3)


def test_perform_does_not_wait_for_drawing(panel: Panel) -> None:
    start = time.perf_counter()
    for _ in range(200):
        panel.screen.perform(ShowScreen(Screen.PROMPT, prompt=PROMPT))
        panel.screen.perform(ShowScreen(Screen.THANKS, prompt=PROMPT, score=5))
    per_call = (time.perf_counter() - start) / 400
    assert per_call < 0.002
    assert panel.screen.wait_for_redraw()
    assert panel.screen.state.screen == Screen.THANKS


def test_thanks_qr_decodes_to_signed_url(panel: Panel) -> None:
    panel.show(ShowScreen(Screen.THANKS, prompt=PROMPT, score=5))
    (url,) = decode_qr(panel.screen.screenshot())
    assert url.startswith(f"https://hcp.example.gov.cn/r/{PROMPT.case_ids[0]}?t=")
    assert verify(url.split("?t=")[1], PROMPT.case_ids[0], KEY.encode(), NOW) == NOW + 7 * 86400


def test_clerk_status_and_feedback(panel: Panel) -> None:
    panel.screen.set_clerk("王芳", "1024", None)
    panel.show(ShowScreen(Screen.IDLE))
    texts = [item.text for item in panel.screen.frame.texts]
    assert "王芳" in texts and "工号 1024" in texts
    panel.screen.show_status(StatusLight.OFFLINE, "broker down")
    assert panel.screen.wait_for_redraw()
    assert len(panel.screen.frame.dirty) == 1 and panel.screen.frame.dirty[0].width < 40  # just the dot
    panel.show(ShowScreen(Screen.PROMPT, prompt=PROMPT))
    panel.show(Feedback(3))
    assert panel.screen.state.lit == 3
    assert panel.screen.frame.dirty == [panel.target(StarPressed(3))]


def test_five_corner_taps_open_technician_screen(panel: Panel) -> None:
    panel.screen.set_diagnostics(link="connected", outbox_depth=7)
    panel.show(ShowScreen(Screen.IDLE))
    for _ in range(5):
        panel.touch((5, 5))
    deadline = time.monotonic() + 2
    while panel.screen.state.screen != TECHNICIAN and time.monotonic() < deadline:
        time.sleep(0.02)
    assert panel.screen.wait_for_redraw()
    text = " ".join(item.text for item in panel.screen.frame.texts)
    assert "hall01-w03" in text and "connected" in text and "7" in text
    assert panel.events.empty()
    panel.show(ShowScreen(Screen.PROMPT, prompt=PROMPT))  # a citizen's screen closes it
    assert panel.screen.state.screen == Screen.PROMPT


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_to_logical_inverts_the_rotation(rotate: int) -> None:
    logical = pygame.Surface((48, 80))
    logical.fill((0, 0, 0))
    logical.set_at((7, 60), (255, 0, 0))
    shown = pygame.transform.rotate(logical, rotate)
    (pos,) = [(x, y) for x in range(shown.get_width()) for y in range(shown.get_height())
              if shown.get_at((x, y))[0] == 255]
    assert to_logical(pos, rotate, (48, 80)) == (7, 60)


def test_portrait_on_a_landscape_panel_maps_touches() -> None:
    display = DisplaySection(fullscreen=False, orientation="portrait", rotate=90)
    with make(display) as screen:
        panel = Panel(screen)
        assert pygame.display.get_surface().get_size() == (800, 480)
        panel.show(ShowScreen(Screen.PROMPT, prompt=PROMPT))
        x, y = panel.target(StarPressed(5)).center  # logical, in the 480×800 picture
        panel.touch((y, 480 - 1 - x))  # where that point lands after a 90° counter-clockwise turn
        assert panel.next_event() == StarPressed(5)


def test_close_is_idempotent_and_safe_unstarted() -> None:
    screen = make()
    screen.close()
    screen.start(lambda event: None)
    screen.close()
    screen.close()


def test_from_config(tmp_path: Path) -> None:
    config = SimpleNamespace(
        display=DisplaySection(fullscreen=False), receipt=ReceiptSection(key=KEY), voice=VoiceSection(),
        device=DeviceSection(id="hall01-w03", hall_id="hall01", window_id="w03", hall_name="某大厅",
                             window_name="5号窗口"),
        policy=PolicySection(preset="henan"), frontend=FrontendSection(kinds=["touch", "gpio"]))
    with TouchScreen.from_config(config) as screen:
        panel = Panel(screen)
        panel.show(ShowScreen(Screen.REASONS, prompt=PROMPT, score=2))  # no reasons given: the profile's
        toggles = [t.reason for _, t in screen.frame.hits if isinstance(t, ReasonToggled)]
        assert "勤政廉洁" in toggles and len(toggles) == 7
        # A GPIO panel beside the screen: its star keys choose reasons, and the screen says how.
        drawn = [item.text for item in screen.frame.texts]
        assert "①承诺履行" in drawn and "按键①–④选择，⑤下一页" in drawn
        panel.show(ShowScreen(Screen.REASONS, prompt=PROMPT, score=2, page=1))
        drawn = [item.text for item in screen.frame.texts]
        assert "③勤政廉洁" in drawn and "按键①–③选择，⑤提交" in drawn
        assert screen.state.hall_name == "某大厅" and screen.state.tech.device_id == "hall01-w03"


def test_receipts_on_without_a_key_are_logged_not_silent(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hcp.ui.touch"), TouchScreen(
            DisplaySection(fullscreen=False), ReceiptSection(), VoiceSection(enabled=False)):
        pass
    assert "no receipt.key_file or key" in caplog.text

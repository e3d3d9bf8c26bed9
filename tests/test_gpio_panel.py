"""The GPIO panel on gpiozero's mock pins: presses, bounce, two keys, stuck keys, outputs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hcp.agent.events import (
    ClerkTrigger,
    Event,
    Feedback,
    PlaySound,
    Screen,
    ShowScreen,
    Sound,
    StarPressed,
    StatusLight,
)
from hcp.device.clerk_link import Clerk
from hcp.device.exc import PinError
from hcp.device.gpio_panel import STATUS_PATTERNS, GpioPanel
from hcp.device.settings import GpioSection

STARS = (5, 6, 13, 19, 26)
LEDS = (12, 16, 20, 21, 25)
TRIGGER, STATUS, BUZZER = 17, 27, 22
BOUNCE_S = 0.02


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    made = MockFactory()
    yield made
    made.reset()


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def panel(factory: MockFactory, events: list[Event]) -> Iterator[GpioPanel]:
    with GpioPanel(STARS, star_led_pins=LEDS, trigger_pin=TRIGGER, status_led_pin=STATUS, buzzer_pin=BUZZER,
                   bounce_s=BOUNCE_S, stuck_s=0.3, beep_s=0.05, item_code="ITEM-1", item_name="不动产登记",
                   clerk_id="E0000", pin_factory=factory) as made:
        made.start(events.append)
        yield made


def press(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_low()  # keys pull to ground


def release(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_high()


def tap(factory: MockFactory, pin: int) -> None:
    press(factory, pin)
    time.sleep(BOUNCE_S * 1.5)
    release(factory, pin)
    time.sleep(BOUNCE_S * 1.5)


def lit(factory: MockFactory) -> list[int]:
    return [n for n, pin in enumerate(LEDS, start=1) if factory.pin(pin).state]


def test_a_full_rating_sequence(factory: MockFactory, panel: GpioPanel, events: list[Event]) -> None:
    tap(factory, TRIGGER)
    assert len(events) == 1 and isinstance(events[0], ClerkTrigger)
    panel.perform(ShowScreen(Screen.PROMPT, prompt=events[0].prompt))
    assert lit(factory) == [1, 2, 3, 4, 5]
    tap(factory, STARS[3])
    assert events[1:] == [StarPressed(4)]
    panel.perform(Feedback(4))
    assert lit(factory) == [4]
    assert factory.pin(BUZZER).state  # the beep is on ...
    time.sleep(0.15)
    assert not factory.pin(BUZZER).state  # ... and short
    panel.perform(ShowScreen(Screen.THANKS))
    assert lit(factory) == []


def test_on_the_reasons_screen_the_keys_that_choose_are_lit(factory: MockFactory, panel: GpioPanel) -> None:
    reasons = ("承诺履行", "服务态度", "申请材料", "办事效率", "跑趟次数", "服务机制", "勤政廉洁")
    panel.perform(ShowScreen(Screen.REASONS, score=2, reasons=reasons))
    assert lit(factory) == [1, 2, 3, 4, 5]  # four reasons, and 5 for the next page
    panel.perform(ShowScreen(Screen.REASONS, score=2, reasons=reasons, page=1))
    assert lit(factory) == [1, 2, 3, 5]  # three reasons left, and 5 to submit


def test_the_trigger_button_raises_a_prompt_without_cases(factory: MockFactory, panel: GpioPanel,
                                                          events: list[Event]) -> None:
    tap(factory, TRIGGER)
    panel.clerk = Clerk("李四", "E1024")
    tap(factory, TRIGGER)
    first, second = (e.prompt for e in events if isinstance(e, ClerkTrigger))
    assert first.case_ids == () and first.clerk_id == "E0000" and first.item_code == "ITEM-1"
    assert first.item_name == "不动产登记"
    assert second.clerk_id == "E1024" and second.clerk_name == "李四"
    assert first.prompt_id != second.prompt_id and first.prompt_id.startswith("btn-")


def test_a_bouncing_key_counts_once(factory: MockFactory, panel: GpioPanel, events: list[Event]) -> None:
    pin = factory.pin(STARS[2])
    for _ in range(4):  # five edges down and four up, all within the bounce time
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    time.sleep(BOUNCE_S * 1.5)
    pin.drive_high()
    for _ in range(3):  # release bounce must not read as a press either
        pin.drive_low()
        pin.drive_high()
    time.sleep(BOUNCE_S * 1.5)
    assert events == [StarPressed(3)]
    tap(factory, STARS[2])
    assert events == [StarPressed(3), StarPressed(3)]


def test_the_first_of_two_keys_wins(factory: MockFactory, panel: GpioPanel, events: list[Event]) -> None:
    press(factory, STARS[1])
    press(factory, STARS[4])  # while 2 is down: ambiguous, ignored
    time.sleep(BOUNCE_S * 1.5)
    release(factory, STARS[1])
    release(factory, STARS[4])
    time.sleep(BOUNCE_S * 1.5)
    assert events == [StarPressed(2)]


def test_the_trigger_is_not_blocked_by_a_star_key(factory: MockFactory, panel: GpioPanel,
                                                  events: list[Event]) -> None:
    press(factory, STARS[0])
    press(factory, TRIGGER)
    assert [type(e) for e in events] == [StarPressed, ClerkTrigger]


def test_a_stuck_key_is_a_fault_not_a_repeat(factory: MockFactory, panel: GpioPanel, events: list[Event],
                                            caplog: pytest.LogCaptureFixture) -> None:
    faults: list[str | None] = []
    panel.when_fault = faults.append
    with caplog.at_level(logging.WARNING, logger="hcp.device.gpio_panel"):
        press(factory, STARS[0])
        time.sleep(0.6)  # twice stuck_s: still one report
    assert events == [StarPressed(1)]
    assert panel.fault == "stuck key: star 1" and faults == ["stuck key: star 1"]
    assert sum("stuck" in r.message for r in caplog.records) == 1
    assert _blinking_at(factory, STATUS_PATTERNS[StatusLight.FAULT])
    tap(factory, STARS[2])  # a stuck key no longer blocks the others
    assert events == [StarPressed(1), StarPressed(3)]
    release(factory, STARS[0])
    assert panel.fault is None and faults == ["stuck key: star 1", None]


def test_presses_outside_a_prompt_are_posted_once_each(factory: MockFactory, panel: GpioPanel,
                                                       events: list[Event]) -> None:
    panel.perform(ShowScreen(Screen.IDLE))
    for pin in STARS:
        tap(factory, pin)
    assert events == [StarPressed(n) for n in range(1, 6)]
    assert lit(factory) == []  # no Feedback came: nothing lights


def test_presses_before_start_and_after_close_go_nowhere(factory: MockFactory) -> None:
    events: list[Event] = []
    panel = GpioPanel(STARS, pin_factory=factory, bounce_s=0)
    press(factory, STARS[0])
    panel.start(events.append)
    panel.close()
    panel.close()  # twice is fine
    panel.perform(Feedback(1))  # and so is a late command
    assert events == []


def test_status_patterns(factory: MockFactory, panel: GpioPanel) -> None:
    panel.show_status(StatusLight.IDLE, "")
    assert factory.pin(STATUS).state
    for light in (StatusLight.PROMPTED, StatusLight.OFFLINE, StatusLight.FAULT):
        panel.show_status(light, "")
        assert _blinking_at(factory, STATUS_PATTERNS[light]), light


def test_sounds(factory: MockFactory, panel: GpioPanel) -> None:
    panel.perform(PlaySound(Sound.ERROR))
    assert factory.pin(BUZZER).state
    panel.perform(PlaySound(Sound.THANKS))  # spoken prompts are not the buzzer's job
    panel.perform(Feedback(None, beep=False))
    assert lit(factory) == []


def test_a_pin_in_use_is_one_line_and_releases_the_rest(factory: MockFactory) -> None:
    with pytest.raises(PinError, match=r"GPIO 5 \(star 1\)"), \
            GpioPanel(STARS, pin_factory=factory), GpioPanel(STARS, pin_factory=factory):
        pass
    GpioPanel(STARS, pin_factory=factory).close()  # all released again


def test_from_config(factory: MockFactory) -> None:
    class Config:
        gpio = GpioSection(star_led_pins=None, status_led_pin=None, buzzer_pin=None, bounce_ms=0)

    events: list[Event] = []
    with GpioPanel.from_config(Config(), pin_factory=factory) as panel:  # type: ignore[arg-type]
        panel.start(events.append)
        press(factory, Config.gpio.star_pins[4])
        panel.perform(Feedback(5))  # no LEDs configured: nothing to do
    assert events == [StarPressed(5)]


def test_press_to_feedback_latency(factory: MockFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """Press → post → agent thread → Feedback → LED lit; printed, not asserted (CI machines vary)."""
    inbox: list[Event] = []
    ready = threading.Event()
    panel = GpioPanel(STARS, star_led_pins=LEDS, buzzer_pin=BUZZER, bounce_s=0, pin_factory=factory)

    def post(event: Event) -> None:  # the agent: another thread answering each press with Feedback
        inbox.append(event)
        ready.set()

    def agent() -> None:
        while ready.wait(1):
            ready.clear()
            event = inbox.pop()
            assert isinstance(event, StarPressed)
            panel.perform(Feedback(event.score))
            done.set()

    done = threading.Event()
    threading.Thread(target=agent, daemon=True).start()
    panel.start(post)
    samples = []
    for n in range(50):
        key = n % 5
        start = time.perf_counter()
        press(factory, STARS[key])
        assert done.wait(1)
        samples.append(time.perf_counter() - start)
        done.clear()
        assert lit(factory) == [key + 1]
        release(factory, STARS[key])
    panel.close()
    samples.sort()
    with capsys.disabled():
        print(f"\nGPIO press→LED latency (MockFactory, via an agent thread): median "
              f"{samples[25] * 1e3:.2f} ms, max {samples[-1] * 1e3:.2f} ms")


def _blinking_at(factory: MockFactory, pattern: tuple[float, float | None]) -> bool:
    on_s, off_s = pattern
    pin = factory.pin(STATUS)
    pin.clear_states()
    time.sleep(on_s + (off_s or 0) + 0.1)
    changes = [s.timestamp for s in pin.states[1:]]
    return len(changes) >= 2 and abs(changes[1] - (on_s if pin.states[1].state else off_s)) < 0.06

"""Every hardware front end in one real agent, with a real broker and a real collector.

The clerk's PC drives the clerk link over a pseudo-terminal pair, the citizen
presses gpiozero MockFactory pins and touches the pygame screen (dummy video
driver); the collector stores and acks; the clerk's PC reads the outcome back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pygame
import pytest
from gpiozero.pins.mock import MockFactory
from serial_peer import PtyPeer, wait_until

from hcp.agent.events import ReasonsDone, ReasonToggled, StarPressed
from hcp.agent.machine import State
from hcp.agent.runtime import Agent
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.service import Collector
from hcp.collector.store import Store
from hcp.config.schema import AgentConfig, CollectorConfig, load_config
from hcp.device.clerk_link import ClerkLink
from hcp.device.frames import FrameType
from hcp.device.gpio_panel import GpioPanel
from hcp.domain import now_cst
from hcp.protocol import CaseRecord
from hcp.ui.settings import DisplaySection, ReceiptSection, VoiceSection
from hcp.ui.touch import TouchScreen

STARS = (5, 6, 13, 19, 26)          # BCM pins of star keys 1..5
LEDS = (12, 16, 20, 21, 25)


def cases(*ids: str, minutes_ago: float = 20) -> list[CaseRecord]:
    return [CaseRecord(case_id=i, hall_id="h1", window_id="w1", item_code="I1", item_name="不动产登记",
                       clerk_id="E1024", intake="ok", applicant_id="P-1",
                       completed_at=now_cst() - timedelta(minutes=minutes_ago)) for i in ids]


@pytest.fixture
def collector(broker, tmp_path: Path) -> Iterator[Collector]:
    config = load_config(CollectorConfig, None, {"broker": {"port": broker.port},
                                                  "data": {"dir": str(tmp_path / "collector")},
                                                  "policy": {"preset": "henan"}})
    made = Collector(config)
    with stored(made) as store:  # before it runs: its worker thread owns its own connection
        store.register_device("t1", "h1", "w1")
        store.add_cases(cases("C1", "C2") + cases("C9", minutes_ago=1), now_cst())
    with made as running:
        running.start()
        assert running.wait_connected(10)
        yield running


def stored(collector: Collector) -> Store:
    """A connection of the test's own to the collector's database."""
    return Store.open(collector.database, collector.profile, load_or_create_key(collector.secret_file))


def exported(collector: Collector) -> list[dict]:
    with stored(collector) as store:
        return list(store.export())


@pytest.fixture
def agent_parts(broker, tmp_path: Path):
    factory = MockFactory()
    clerk_peer = PtyPeer(tmp_path / "clerk-port")
    clerk = ClerkLink(str(tmp_path / "clerk-port"), heartbeat_s=0.2, reconnect_max_s=0.2)
    panel = GpioPanel(STARS, star_led_pins=LEDS, trigger_pin=17, status_led_pin=27, buzzer_pin=22,
                      bounce_s=0.005, pin_factory=factory)
    touch = TouchScreen(DisplaySection(fullscreen=False), ReceiptSection(key="k" * 32), VoiceSection(enabled=False),
                        hall_name="测试大厅", window_name="1号窗口", device_id="t1",
                        dimensions=("服务态度", "办事效率"))
    config = load_config(AgentConfig, None, {
        "device": {"id": "t1", "hall_id": "h1", "window_id": "w1"},
        "broker": {"port": broker.port}, "data": {"dir": str(tmp_path / "agent")},
        "timing": {"response_interval_s": 0.05, "thanks_s": 0.3}, "policy": {"preset": "henan"}})
    agent = Agent(config, [clerk, panel, touch], link_options={"backoff_max_s": 0.5})
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    assert agent.link.wait_connected(10)  # the front ends are started before the link
    yield agent, clerk_peer, factory, touch
    stop.set()
    runner.join(10)
    agent.close()
    clerk_peer.unplug()


def press(factory: MockFactory, score: int) -> None:
    pin = factory.pin(STARS[score - 1])
    pin.drive_low()
    time.sleep(0.05)
    pin.drive_high()


def touch_target(screen: TouchScreen, wanted: object) -> None:
    wait_until(lambda: screen.frame is not None and any(t == wanted for _, t in screen.frame.hits), 5)
    assert screen.frame is not None
    rect = next(r for r, t in screen.frame.hits if t == wanted)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1))


def test_clerk_link_prompt_gpio_press_touch_reasons_and_outcome(collector, agent_parts):
    agent, pc, factory, touch = agent_parts
    pc.expect(FrameType.HEARTBEAT)
    pc.send(FrameType.SIGN_IN, {"req": 1, "name": "李四", "employee_no": "E1024"})
    assert pc.expect(FrameType.ACK).fields()["ok"]
    wait_until(lambda: touch.state.clerk is not None and touch.state.clerk.name == "李四")

    # 1. The clerk's PC prompts; the citizen presses 5 on the GPIO panel.
    pc.send(FrameType.PROMPT, {"req": 2, "case_ids": ["C1"], "item_code": "I1", "item_name": "不动产登记",
                               "clerk_id": "E1024"})
    first = pc.expect(FrameType.ACK).fields()["prompt_id"]
    wait_until(lambda: agent.machine.state is State.PROMPTED)
    assert factory.pin(LEDS[4]).state in (0, 1)
    press(factory, 5)
    wait_until(lambda: agent.outbox.depth() == 0 and agent.machine.state is State.IDLE, 10)

    # 2. The next citizen rates on the touchscreen: 2 stars, a reason, submit.
    pc.send(FrameType.PROMPT, {"req": 3, "case_ids": ["C2"], "item_code": "I1", "item_name": "不动产登记",
                               "clerk_id": "E1024"})
    second = pc.expect(FrameType.ACK).fields()["prompt_id"]
    touch_target(touch, StarPressed(2))
    time.sleep(0.1)  # a person's next touch comes after the response interval
    touch_target(touch, ReasonToggled("办事效率"))
    wait_until(lambda: "办事效率" in touch.state.selected, 5)
    time.sleep(0.1)  # past the response interval
    touch_target(touch, ReasonsDone(submit=True))
    wait_until(lambda: agent.outbox.depth() == 0 and agent.machine.state is State.IDLE, 10)

    # The collector holds both, linked and accepted; the clerk's PC reads the verdicts back.
    rows = {row["rating_id"]: row for row in exported(collector)}
    assert sorted((r["case_ids"][0], r["score"], r["outcome"]) for r in rows.values()) == [
        ("C1", 5, "accepted"), ("C2", 2, "accepted")]
    assert [r["reasons"] for r in rows.values() if r["score"] == 2] == [["办事效率"]]
    for prompt_id in (first, second):
        pc.send(FrameType.QUERY_OUTCOME, {"req": 9, "prompt_id": prompt_id})
        answer = pc.expect(FrameType.OUTCOME).fields()
        assert answer["state"] == "rated" and answer["outcome"] == "accepted", answer


def test_the_clerk_button_prompt_is_linked_to_the_windows_case(collector, agent_parts):
    agent, _pc, factory, _touch = agent_parts
    trigger = factory.pin(17)  # the clerk-side 请评价 key: no case id
    trigger.drive_low()
    time.sleep(0.05)
    trigger.drive_high()
    wait_until(lambda: agent.machine.state is State.PROMPTED, 5)
    assert agent.machine.prompt is not None and agent.machine.prompt.case_ids == ()
    time.sleep(0.1)
    press(factory, 4)
    wait_until(lambda: agent.outbox.depth() == 0 and agent.machine.state is State.IDLE, 10)
    [row] = [r for r in exported(collector) if r["score"] == 4]
    assert (row["outcome"], row["linked_case_id"], row["case_ids"]) == ("accepted", "C9", [])
    assert "linked to case C9" in row["ack_reason"]

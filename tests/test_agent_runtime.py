"""The agent process against a real Mosquitto and a real SQLite outbox, driven through the sim panel."""

from __future__ import annotations

import io
import logging
import os
import queue
import shlex
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hcp.agent import frontends
from hcp.agent.clock import Clock
from hcp.agent.events import ClerkTrigger, PromptSpec, StarPressed, StoreRating
from hcp.agent.frontends import build_frontends
from hcp.agent.runtime import Agent
from hcp.config.schema import AgentConfig
from hcp.device.sim_panel import SimPanel
from hcp.domain import CST, Kind, Outcome
from hcp.exc import ConfigError
from hcp.protocol import (
    AckMessage,
    AckResult,
    PromptMessage,
    Rating,
    RatingMessage,
    StatusMessage,
    Topics,
    decode,
    encode,
)
from hcp.sim.broker import Broker
from hcp.sync.mqtt import Incoming, LinkSettings, MqttLink
from hcp.sync.outbox import Draft, Outbox

WAIT_S = 15.0
FAST_LINK = {"backoff_min_s": 0.05, "backoff_max_s": 0.5}


def config_for(broker: Broker, data_dir: Path, **sections: dict[str, object]) -> AgentConfig:
    base: dict[str, dict[str, object]] = {
        "device": {"id": f"w-{uuid.uuid4().hex[:8]}", "hall_id": "hall01", "window_id": "w03"},
        "broker": {"host": broker.host, "port": broker.port, "prefix": f"test/{uuid.uuid4().hex}"},
        "data": {"dir": str(data_dir)},
        "timing": {"response_interval_s": 0.2, "thanks_s": 0.5},
        "sync": {"resend_after_s": 2, "status_interval_s": 1},
        "clock": {"synced": "yes"},
    }
    for name, values in sections.items():
        base[name] = base.get(name, {}) | values
    return AgentConfig.model_validate(base)


class Terminal:
    """An Agent on its own thread, its SimPanel fed through a pipe, its output lines in a queue."""

    def __init__(self, config: AgentConfig) -> None:
        read_fd, write_fd = os.pipe()
        self._stdin = os.fdopen(read_fd, encoding="utf-8")
        self.feed = os.fdopen(write_fd, "w", encoding="utf-8", buffering=1)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.panel = SimPanel(self._stdin, self)  # type: ignore[arg-type]
        self.agent = Agent(config, [self.panel], link_options=FAST_LINK)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)

    # the panel's output stream
    def write(self, text: str) -> int:
        for line in text.splitlines():
            self.lines.put(line)
        return len(text)

    def flush(self) -> None:
        pass

    def send(self, line: str) -> None:
        self.feed.write(line + "\n")

    def expect(self, prefix: str) -> str:
        """The next output line starting with ``prefix`` (lines before it are kept in ``seen``)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r}; saw {self.seen[-20:]}")

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(WAIT_S)
        self.agent.close()
        self.feed.close()
        self._stdin.close()


class Collector:
    """The collector's side of the wire, as little of it as a test needs: store nothing, ack everything."""

    def __init__(self, broker: Broker, topics: Topics, device_id: str, *, answer: bool = True) -> None:
        self.topics, self.device_id, self.answer = topics, device_id, answer
        self.ratings: queue.Queue[Rating] = queue.Queue()
        self.status: queue.Queue[StatusMessage] = queue.Queue()
        settings = LinkSettings(host=broker.host, port=broker.port, client_id=f"collector-{uuid.uuid4().hex[:8]}",
                                **FAST_LINK)  # type: ignore[arg-type]
        self.link = MqttLink(settings, self._heard)
        self.link.subscribe(topics.rating(device_id))
        self.link.subscribe(topics.status(device_id))
        self.link.start()
        assert self.link.wait_connected(WAIT_S)

    def _heard(self, message: Incoming) -> None:
        if message.topic.endswith("/status"):
            self.status.put(decode(StatusMessage, message.payload))
            return
        batch = decode(RatingMessage, message.payload)
        for rating in batch.ratings:
            self.ratings.put(rating)
        if self.answer:
            ack = AckMessage(v=1, results=[AckResult(rating_id=r.rating_id, outcome=Outcome.ACCEPTED)
                                           for r in batch.ratings])
            self.link.publish(self.topics.ack(self.device_id), encode(ack))

    def prompt(self, prompt_id: str, *cases: str) -> None:
        message = PromptMessage(v=1, prompt_id=prompt_id, case_ids=list(cases), item_code="I100",
                                item_name="营业执照", clerk_id="K7")
        self.link.publish(self.topics.prompt(self.device_id), encode(message))


@pytest.fixture
def made(broker: Broker) -> Iterator[list[Terminal | Collector]]:
    things: list[Terminal | Collector] = []
    yield things
    for thing in reversed(things):
        thing.close() if isinstance(thing, Terminal) else thing.link.close()


def start(made: list[Terminal | Collector], broker: Broker, config: AgentConfig,
          answer: bool = True) -> tuple[Terminal, Collector]:
    collector = Collector(broker, Topics(config.broker.prefix), config.device.id, answer=answer)
    made.append(collector)
    terminal = Terminal(config)
    made.append(terminal)
    terminal.thread.start()
    terminal.expect("ready")
    return terminal, collector


def thanked_fields(line: str) -> dict[str, str]:
    words = shlex.split(line)
    return {"rating_id": words[1], **dict(w.split("=", 1) for w in words[2:])}


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_full_rating_over_mqtt(made: list, broker: Broker, tmp_path: Path) -> None:
    config = config_for(broker, tmp_path)
    terminal, collector = start(made, broker, config)
    terminal.expect("status idle")
    collector.prompt("P1", "C1")
    assert terminal.expect("screen prompt") == (
        "screen prompt prompt=P1 cases=C1 item=I100 item_name=营业执照 clerk=K7")
    terminal.send("press 5")
    assert terminal.expect("feedback") == "feedback 5 beep=yes"
    thanked = thanked_fields(terminal.expect("thanked"))
    assert thanked | {"rating_id": "-"} == {"rating_id": "-", "kind": "service", "cases": "C1", "score": "5",
                                            "link": "up"}
    assert collector.ratings.get(timeout=WAIT_S).rating_id == thanked["rating_id"]
    wait_for(lambda: terminal.agent.outbox.depth() == 0, "the outbox to drain")
    terminal.expect("screen idle")
    collector.prompt("P1", "C1")  # delivered again: the case was rated, nothing happens
    terminal.send("press 4")
    time.sleep(0.5)
    assert terminal.agent.outbox.depth() == 0 and collector.ratings.empty()


def test_bad_rating_with_reasons(made: list, broker: Broker, tmp_path: Path) -> None:
    config = config_for(broker, tmp_path)  # henan: reasons after a 差评, no hall question
    terminal, collector = start(made, broker, config)
    terminal.send("prompt C5,C6 I100 营业执照 K7 P5")
    terminal.expect("screen prompt")
    terminal.send("press 2")
    assert "reasons=承诺履行,服务态度," in terminal.expect("screen reasons")
    time.sleep(0.3)  # past response_interval_s: a quicker press would count as a bounce
    terminal.send("reason 服务态度")
    assert terminal.expect("screen reasons").endswith("selected=服务态度")
    time.sleep(0.3)
    terminal.send("submit")
    store = terminal.expect("store service")
    thanked = thanked_fields(terminal.expect("thanked"))
    rating = collector.ratings.get(timeout=WAIT_S)
    assert (rating.rating_id, rating.case_ids, rating.score, rating.reasons) == (
        thanked["rating_id"], ["C5", "C6"], 2, ["服务态度"])
    assert (rating.hall_id, rating.window_id, rating.clerk_id, rating.item_code, rating.clock_synced) == (
        "hall01", "w03", "K7", "I100", True)
    assert rating.rated_at.isoformat() in store and rating.uptime_s is not None


def test_star_keys_choose_reasons_on_the_sim_panel(made: list, broker: Broker, tmp_path: Path) -> None:
    config = config_for(broker, tmp_path)  # henan: seven reasons, four a page
    terminal, collector = start(made, broker, config)
    terminal.send("prompt C5 I100 营业执照 K7 P5")
    terminal.expect("screen prompt")
    terminal.send("press 2")
    terminal.expect("screen reasons")
    time.sleep(0.3)  # past response_interval_s: the scoring key bouncing is ignored
    steps = (("2", "selected=服务态度"), ("5", "page=1 selected=服务态度"), ("3", "selected=服务态度,勤政廉洁"))
    for key, after in steps:
        terminal.send(f"press {key}")
        assert terminal.expect("screen reasons").endswith(after)
    time.sleep(0.2)  # past key_bounce_s: key 5 again within it would be key 5 bouncing
    terminal.send("press 5")  # on the last page: submit
    terminal.expect("store service")
    assert collector.ratings.get(timeout=WAIT_S).reasons == ["服务态度", "勤政廉洁"]


def test_a_terminal_without_a_screen_stores_a_bad_score_at_once(tmp_path: Path) -> None:
    config = AgentConfig.model_validate({"device": {"id": "t1", "hall_id": "h1", "window_id": "w1"},
                                         "data": {"dir": str(tmp_path)}, "frontend": {"kinds": ["gpio"]}})
    with Agent(config, []) as agent:  # a bare GPIO panel: nobody would see a reasons screen
        now = datetime.now(CST)
        agent.machine.handle(ClerkTrigger(PromptSpec("P1", ("C1",), "I1", "营业执照", "K7")), now)
        out = agent.machine.handle(StarPressed(1), now)
    assert [c.reasons for c in out if isinstance(c, StoreRating)] == [()]


def test_rating_while_broker_down_is_thanked_and_delivered_later(made: list, broker: Broker,
                                                                 tmp_path: Path) -> None:
    config = config_for(broker, tmp_path)
    terminal, collector = start(made, broker, config)
    terminal.expect("status idle")
    broker.stop()
    terminal.expect("status offline")
    terminal.send("prompt C2 I100 营业执照 K7 P2")
    terminal.expect("screen prompt")
    terminal.send("press 4")
    thanked = thanked_fields(terminal.expect("thanked"))
    assert thanked["link"] == "down"
    assert terminal.agent.outbox.depth() == 1  # durable before thanked
    broker.start()
    assert collector.ratings.get(timeout=WAIT_S).rating_id == thanked["rating_id"]
    wait_for(lambda: terminal.agent.outbox.depth() == 0, "the outbox to drain after the broker came back")
    terminal.expect("status idle")


def test_full_outbox_faults_and_does_not_thank(made: list, broker: Broker, tmp_path: Path) -> None:
    config = config_for(broker, tmp_path, data={"outbox_max_rows": 100})
    with Outbox(tmp_path / "outbox.sqlite", max_rows=100) as outbox:
        outbox.add_many([Draft(Kind.SERVICE, (f"X{i}",), 5, datetime.now(CST), True) for i in range(100)])
    terminal, _collector = start(made, broker, config, answer=False)
    terminal.send("prompt C3 I100 营业执照 K7 P3")
    terminal.expect("screen prompt")
    terminal.send("press 5")
    fault = terminal.expect("screen fault")
    assert "limit is 100" in shlex.split(fault)[-1]
    terminal.expect("status fault")
    terminal.expect("screen idle")
    assert not any(line.startswith("thanked") for line in terminal.seen)
    assert terminal.agent.outbox.depth() == 100


def test_status_is_retained_online_then_offline(made: list, broker: Broker, tmp_path: Path) -> None:
    config = config_for(broker, tmp_path)
    terminal, collector = start(made, broker, config)
    status = collector.status.get(timeout=WAIT_S)
    assert (status.state, status.outbox_depth, status.clock_synced) == ("online", 0, True)
    terminal.close()
    deadline = time.monotonic() + WAIT_S
    while (status := collector.status.get(timeout=WAIT_S)).state != "offline":
        assert time.monotonic() < deadline


def test_malformed_prompt_is_logged_with_its_field(made: list, broker: Broker, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    config = config_for(broker, tmp_path)
    terminal, collector = start(made, broker, config)
    terminal.expect("status idle")
    # The agent's status comes after its subscriptions on the same connection: once the collector has it,
    # the broker has the agent's subscriptions too, and a prompt published now reaches it (under load the
    # prompt used to be published before the agent's SUBSCRIBE was in, and was never delivered).
    assert collector.status.get(timeout=WAIT_S).state == "online"
    with caplog.at_level(logging.WARNING, logger="hcp.agent"):
        collector.link.publish(collector.topics.prompt(config.device.id), b'{"v":1,"prompt_id":"P1"}')
        collector.link.publish(collector.topics.ack(config.device.id), b"not json")
        wait_for(lambda: len([r for r in caplog.records if "malformed" in r.getMessage()]) == 2, "two warnings")
    messages = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert "case_ids" in messages[0] and "payload" in messages[1]
    collector.prompt("P9", "C9")
    terminal.expect("screen prompt prompt=P9")  # the agent lived on


def test_close_is_idempotent_and_half_built_is_safe(broker: Broker, tmp_path: Path) -> None:
    config = config_for(broker, tmp_path)
    with Agent(config, [SimPanel(io.StringIO(""), io.StringIO())]) as agent:
        agent.close()
    agent.close()
    (tmp_path / "blocked").write_text("a file where the data directory should be")
    bad = config_for(broker, tmp_path / "blocked")
    with pytest.raises(OSError):
        Agent(bad, [])


def test_build_frontends(broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_for(broker, tmp_path)
    panel = SimPanel(io.StringIO(""), io.StringIO())
    assert build_frontends(config, sim=panel) == [panel]
    assert isinstance(build_frontends(config)[0], SimPanel)
    # A driver that cannot be imported here (no such module, or its hardware library missing).
    monkeypatch.setitem(frontends.KINDS, "gpio", "hcp.device.not_on_this_machine:GpioPanel")
    missing = config_for(broker, tmp_path, frontend={"kinds": ["sim", "gpio"]})
    with pytest.raises(ConfigError, match=r"frontend\.kinds: 'gpio' is not available"):
        build_frontends(missing, sim=panel)


# ---- the clock ----------------------------------------------------------------

def test_clock_synced_settings(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    auto = Clock("auto", flag=flag)
    assert not auto.synced
    flag.touch()
    assert auto.synced
    assert Clock("yes", flag=tmp_path / "none").synced and not Clock("no", flag=flag).synced
    with pytest.raises(ConfigError, match=r"clock\.synced"):
        Clock("maybe")  # type: ignore[arg-type]


def test_clock_boot_id_and_uptime(tmp_path: Path) -> None:
    (tmp_path / "boot_id").write_text("5f1c0a8e-1111-2222-3333-444455556666\n")
    (tmp_path / "uptime").write_text("1234.56 4000.00\n")
    moment = datetime(2024, 5, 6, 9, tzinfo=CST)
    clock = Clock("yes", boot_id_file=tmp_path / "boot_id", uptime_file=tmp_path / "uptime", now=lambda: moment)
    assert clock.boot_id == "5f1c0a8e-1111-2222-3333-444455556666"
    assert clock.uptime_s() == 1234.56 and clock.now() == moment
    bare = Clock("yes", boot_id_file=tmp_path / "no", uptime_file=tmp_path / "no")
    assert bare.boot_id is None and bare.uptime_s() > 0
    assert Clock().now().utcoffset() == timedelta(hours=8)

"""The clerk link through a pseudo-terminal pair; the test plays the clerk's PC (and, once, the board)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serial_peer import PtyPeer, wait_until

from hcp.agent.events import (
    ClerkTrigger,
    Event,
    Feedback,
    Paused,
    Screen,
    ShowScreen,
    StarPressed,
    StatusLight,
    Thanked,
)
from hcp.device.clerk_link import Clerk, ClerkLink
from hcp.device.frames import FrameType, encode_frame
from hcp.device.serial_board import SerialBoard
from hcp.device.settings import ClerkLinkSection
from hcp.domain import Kind, Outcome


@pytest.fixture
def pc(tmp_path: Path) -> Iterator[PtyPeer]:
    made = PtyPeer(tmp_path / "usb-FTDI_FT232R-if00-port0")
    yield made
    made.unplug()


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def link(tmp_path: Path, pc: PtyPeer, events: list[Event]) -> Iterator[ClerkLink]:
    with ClerkLink(str(tmp_path / "usb-FTDI_FT232R-if00-port0"), heartbeat_s=0.1, reconnect_max_s=0.2,
                   remember_prompts=4) as made:
        made.start(events.append)
        pc.expect(FrameType.HEARTBEAT)  # the terminal is there
        yield made


def ask(pc: PtyPeer, frame_type: FrameType, fields: dict[str, Any] | None = None,
        answer: FrameType = FrameType.ACK) -> dict[str, Any]:
    pc.send(frame_type, fields)
    return pc.expect(answer).fields()


PROMPT = {"req": 7, "case_ids": ["C2024-0001"], "item_code": "IT-001", "item_name": "不动产登记",
          "clerk_id": "E1024"}


def test_a_whole_rating_over_both_serial_lines(tmp_path: Path, pc: PtyPeer, link: ClerkLink,
                                               events: list[Event]) -> None:
    board_peer = PtyPeer(tmp_path / "board")
    with SerialBoard(str(tmp_path / "board"), heartbeat_s=0.1, heartbeat_timeout_s=0) as board:
        board.start(events.append)
        board_peer.expect(FrameType.VERSION_QUERY)
        board_peer.expect(FrameType.STATUS)  # the last of what is sent on opening
        ack = ask(pc, FrameType.PROMPT, PROMPT)
        assert ack == {"req": 7, "type": 0x30, "ok": True, "error": None, "prompt_id": ack["prompt_id"]}
        wait_until(lambda: len(events) == 1)
        trigger = events[0]
        assert isinstance(trigger, ClerkTrigger) and trigger.prompt.case_ids == ("C2024-0001",)
        assert trigger.prompt.prompt_id == ack["prompt_id"] and trigger.prompt.clerk_id == "E1024"
        for front in (link, board):  # what the state machine would answer
            front.perform(ShowScreen(Screen.PROMPT, prompt=trigger.prompt))
        assert board_peer.expect(FrameType.LED).fields() == {"on": [1, 2, 3, 4, 5]}
        board_peer.send(FrameType.KEY, {"key": 5})
        wait_until(lambda: len(events) == 2)
        assert events[1] == StarPressed(5)
        board.perform(Feedback(5))
        assert board_peer.expect(FrameType.LED).fields() == {"on": [5]}
        state = ask(pc, FrameType.QUERY_STATE, {"req": "s1"}, FrameType.STATE)
        assert state["screen"] == "prompt" and state["prompt_id"] == ack["prompt_id"] and state["req"] == "s1"
        link.perform(Thanked("0192a3b4-c5d6", Kind.SERVICE, ("C2024-0001",), 5))
        link.perform(ShowScreen(Screen.THANKS, prompt=trigger.prompt))
        outcome = ask(pc, FrameType.QUERY_OUTCOME, {"prompt_id": ack["prompt_id"]}, FrameType.OUTCOME)
        assert outcome["state"] == "rated" and outcome["score"] == 5 and outcome["outcome"] is None
        link.note_outcome(ack["prompt_id"], Outcome.ACCEPTED)
        outcome = ask(pc, FrameType.QUERY_OUTCOME, {"prompt_id": ack["prompt_id"]}, FrameType.OUTCOME)
        assert outcome["outcome"] == "accepted" and outcome["rating_id"] == "0192a3b4-c5d6"
    board_peer.unplug()


def test_sign_in_and_out(pc: PtyPeer, link: ClerkLink, events: list[Event]) -> None:
    seen: list[Clerk | None] = []
    link.when_clerk_changed = seen.append
    ack = ask(pc, FrameType.SIGN_IN, {"req": 1, "name": "李四", "employee_no": "E1024",
                                      "photo": "/var/lib/hcp/photos/E1024.jpg"})
    assert ack["ok"] is True
    clerk = Clerk("李四", "E1024", Path("/var/lib/hcp/photos/E1024.jpg"))
    assert link.clerk == clerk and seen == [clerk]
    prompt = dict(PROMPT)
    del prompt["clerk_id"]  # the signed-in clerk is the default
    ask(pc, FrameType.PROMPT, prompt)
    wait_until(lambda: len(events) == 1)
    assert isinstance(events[0], ClerkTrigger)
    assert events[0].prompt.clerk_id == "E1024" and events[0].prompt.clerk_name == "李四"
    state = ask(pc, FrameType.QUERY_STATE, None, FrameType.STATE)
    assert state["clerk"] == {"name": "李四", "employee_no": "E1024", "photo": "/var/lib/hcp/photos/E1024.jpg"}
    assert ask(pc, FrameType.SIGN_OUT)["ok"] is True
    assert link.clerk is None and seen == [clerk, None]
    refused = ask(pc, FrameType.PROMPT, prompt)
    assert refused["ok"] is False and "clerk_id" in refused["error"]


def test_pause_and_resume(pc: PtyPeer, link: ClerkLink, events: list[Event]) -> None:
    assert ask(pc, FrameType.PAUSE)["ok"] is True
    link.perform(ShowScreen(Screen.PAUSED))
    link.show_status(StatusLight.OFFLINE, "broker unreachable")
    state = ask(pc, FrameType.QUERY_STATE, None, FrameType.STATE)
    assert state["paused"] is True and state["screen"] == "paused" and state["prompt_id"] is None
    assert state["light"] == "offline" and state["detail"] == "broker unreachable"
    assert ask(pc, FrameType.RESUME)["ok"] is True
    assert events == [Paused(True), Paused(False)]


def test_bad_requests_are_answered_not_fatal(pc: PtyPeer, link: ClerkLink, events: list[Event]) -> None:
    no_cases = ask(pc, FrameType.PROMPT, {**PROMPT, "case_ids": []})
    assert no_cases["ok"] is False and no_cases["error"].startswith("case_ids") and no_cases["req"] == 7
    assert ask(pc, FrameType.PROMPT, {**PROMPT, "item_code": "bad code!"})["ok"] is False
    assert ask(pc, FrameType.KEY, {"key": 3})["error"] == "unknown request type KEY"  # a board on this port
    pc.send_raw(encode_frame(FrameType.SIGN_IN, b"\xc3("))
    assert "not UTF-8 JSON" in pc.expect(FrameType.ACK).fields()["error"]
    pc.send_raw(b"\x02\x01\x30garbage" + encode_frame(FrameType.PAUSE)[:-1] + b"\x00")  # bad CRC: no answer
    assert ask(pc, FrameType.RESUME)["type"] == FrameType.RESUME
    assert events == [Paused(False)]


def test_outcomes_of_expired_replaced_and_unknown_prompts(pc: PtyPeer, link: ClerkLink,
                                                           events: list[Event]) -> None:
    first = ask(pc, FrameType.PROMPT, {**PROMPT, "prompt_id": "p1"})["prompt_id"]
    second = ask(pc, FrameType.PROMPT, {**PROMPT, "prompt_id": "p2", "case_ids": ["C2"]})["prompt_id"]
    wait_until(lambda: len(events) == 2)
    specs = [e.prompt for e in events if isinstance(e, ClerkTrigger)]
    link.perform(ShowScreen(Screen.PROMPT, prompt=specs[0]))
    link.perform(ShowScreen(Screen.PROMPT, prompt=specs[1]))
    link.perform(ShowScreen(Screen.EXPIRED, prompt=specs[1]))

    def state_of(prompt_id: str) -> str:
        return ask(pc, FrameType.QUERY_OUTCOME, {"prompt_id": prompt_id}, FrameType.OUTCOME)["state"]

    assert (state_of(first), state_of(second), state_of("never")) == ("replaced", "expired", "unknown")
    for n in range(5):  # remember_prompts=4: the oldest are forgotten
        link.note_outcome(f"x{n}", "pending")
    assert state_of(first) == "unknown" and link.outcome("x4") is not None


def test_from_config(tmp_path: Path) -> None:
    class Config:
        clerk_link = ClerkLinkSection(port=str(tmp_path / "tty"), baudrate=9600, remember_prompts=10)

    link = ClerkLink.from_config(Config())  # type: ignore[arg-type]
    assert link._link.url == str(tmp_path / "tty") and link._remember == 10
    link.close()
    link.close()

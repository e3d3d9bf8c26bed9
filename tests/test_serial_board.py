"""The serial button board through a pseudo-terminal pair; the test plays the board on the master side."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serial_peer import PtyPeer, wait_until

from hcp.agent.events import Event, Feedback, Screen, ShowScreen, StarPressed, StatusLight
from hcp.device.frames import FrameType, encode_frame
from hcp.device.serial_board import BoardVersion, SerialBoard
from hcp.device.settings import SerialBoardSection


@pytest.fixture
def port_path(tmp_path: Path) -> Path:
    return tmp_path / "usb-hcp_keys_0001-if00"


@pytest.fixture
def peer(port_path: Path) -> Iterator[PtyPeer]:
    made = PtyPeer(port_path)
    yield made
    made.stop_heartbeats()
    with contextlib.suppress(OSError):  # unplugged by the test already
        os.close(made.master)


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def board(port_path: Path, peer: PtyPeer, events: list[Event]) -> Iterator[SerialBoard]:
    with SerialBoard(str(port_path), heartbeat_s=0.1, heartbeat_timeout_s=0.5, beep_ms=60,
                     reconnect_max_s=0.2) as made:
        made.start(events.append)
        peer.expect(FrameType.VERSION_QUERY)
        peer.expect(FrameType.STATUS)  # the last of what is sent on opening
        peer.heartbeats()
        wait_until(lambda: made.fault is None)
        yield made


def test_version_query_on_open(peer: PtyPeer, board: SerialBoard) -> None:
    peer.send(FrameType.VERSION, {"fw": "1.2.0", "hw": "v3", "proto": 1, "keys": 5})
    assert board.wait_for_version(3) == BoardVersion("1.2.0", "v3", 1, 5)


def test_key_in_feedback_out(peer: PtyPeer, board: SerialBoard, events: list[Event]) -> None:
    board.perform(ShowScreen(Screen.PROMPT))
    assert peer.expect(FrameType.LED).fields() == {"on": [1, 2, 3, 4, 5]}
    peer.send(FrameType.KEY, {"key": 4})
    wait_until(lambda: events == [StarPressed(4)])
    board.perform(Feedback(4))
    assert peer.expect(FrameType.LED).fields() == {"on": [4]}
    assert peer.expect(FrameType.BEEP).fields() == {"ms": 60}
    board.show_status(StatusLight.OFFLINE, "broker unreachable")
    assert peer.expect(FrameType.STATUS).fields() == {"light": "offline"}


def test_garbage_truncation_and_bad_crc_are_survived(peer: PtyPeer, board: SerialBoard,
                                                     events: list[Event]) -> None:
    key = encode_frame(FrameType.KEY, {"key": 1})
    bad = bytearray(encode_frame(FrameType.KEY, {"key": 2}))
    bad[-2] ^= 0x55
    peer.send_raw(b"\x00\xffline noise\x02" + key + bytes(bad) + b"\x02\x01")
    peer.send_raw(encode_frame(FrameType.KEY, {"key": 3})[:7])  # truncated: the line goes quiet
    time.sleep(0.3)
    peer.send(FrameType.KEY, {"key": 5})
    peer.send(FrameType.KEY, {"key": 9})  # out of range: logged, not posted
    peer.send_raw(encode_frame(FrameType.KEY, b"\xff"))  # good CRC, bad payload: logged
    peer.send(FrameType.KEY, {"key": 2})
    wait_until(lambda: len(events) == 3)
    time.sleep(0.1)
    assert events == [StarPressed(1), StarPressed(5), StarPressed(2)]


def test_a_silent_board_is_a_fault(peer: PtyPeer, board: SerialBoard) -> None:
    faults: list[str | None] = []
    board.when_fault = faults.append
    peer.stop_heartbeats()
    wait_until(lambda: board.fault is not None)
    assert "no heartbeat" in (board.fault or "") and not board.is_connected
    peer.heartbeats()
    wait_until(lambda: board.fault is None)
    assert faults[0] is not None and faults[-1] is None


def test_hot_unplug_and_replug(port_path: Path, peer: PtyPeer, board: SerialBoard, events: list[Event],
                               caplog: pytest.LogCaptureFixture) -> None:
    board.perform(Feedback(2))  # the LED state the board must be given again after replugging
    peer.unplug()
    wait_until(lambda: board.fault is not None)
    time.sleep(0.5)  # a few failed reopen attempts against the dead pty
    replugged = PtyPeer(port_path)
    try:
        replugged.expect(FrameType.VERSION_QUERY)
        assert replugged.expect(FrameType.LED).fields() == {"on": [2]}
        replugged.heartbeats()
        replugged.send(FrameType.KEY, {"key": 3})
        wait_until(lambda: events == [StarPressed(3)])
        wait_until(lambda: board.fault is None)
    finally:
        replugged.unplug()
    outage = [r for r in caplog.records if r.levelno >= logging.WARNING and "serial-board" in r.message]
    assert len(outage) == 1, [r.message for r in outage]  # one line per outage, not per attempt


def test_a_missing_port_is_retried_until_it_appears(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "not-yet"
    with SerialBoard(str(path), heartbeat_s=0.1, reconnect_max_s=0.1) as board:
        board.start(events.append)
        wait_until(lambda: "unavailable" in (board.fault or ""))
        late = PtyPeer(path)
        try:
            late.expect(FrameType.VERSION_QUERY)
        finally:
            late.unplug()
    board.close()  # twice is fine


def test_from_config(port_path: Path) -> None:
    class Config:
        serial_board = SerialBoardSection(port=str(port_path), baudrate=9600)

    board = SerialBoard.from_config(Config())  # type: ignore[arg-type]
    assert board._link.url == str(port_path) and board._link.baudrate == 9600
    board.close()


def test_press_to_feedback_latency(port_path: Path, peer: PtyPeer, board: SerialBoard,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """KEY frame in → StarPressed → agent thread → Feedback → LED frame out; printed, not asserted."""
    board.start(lambda event: threading.Thread(target=board.perform, args=(Feedback(event.score),)).start()
                if isinstance(event, StarPressed) else None)
    peer.drain()
    samples = []
    for n in range(30):
        start = time.perf_counter()
        peer.send(FrameType.KEY, {"key": n % 5 + 1})
        assert peer.expect(FrameType.LED).fields() == {"on": [n % 5 + 1]}
        samples.append(time.perf_counter() - start)
    samples.sort()
    with capsys.disabled():
        print(f"\nserial press→LED frame latency (pty, 115200 baud nominal): median "
              f"{samples[15] * 1e3:.2f} ms, max {samples[-1] * 1e3:.2f} ms")

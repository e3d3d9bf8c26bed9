"""Test helpers for serial front ends: the far end of a serial line, on a pseudo-terminal pair."""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hcp.device.frames import Frame, FrameDecoder, FrameType, encode_frame


class PtyPeer:
    """The far end of a serial line: a pty master, reached by the front end through a symlink (as udev's by-id)."""

    def __init__(self, link: Path) -> None:
        self.master, slave = os.openpty()
        self.tty = os.ttyname(slave)
        os.close(slave)  # the front end opens the slave by name
        staging = link.with_name(link.name + ".new")
        os.symlink(self.tty, staging)
        os.replace(staging, link)  # repoint atomically, as udev does on replug
        self._decoder = FrameDecoder()
        self._frames: list[Frame] = []
        self._beating = threading.Event()
        self._beater: threading.Thread | None = None

    def send(self, frame_type: int, fields: dict[str, Any] | None = None) -> None:
        self.send_raw(encode_frame(frame_type, fields))

    def send_raw(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, frame_type: int, timeout: float = 3.0) -> Frame:
        """The next frame of ``frame_type`` (others of other types are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self._frames:
                frame = self._frames.pop(0)
                if frame.type == frame_type:
                    return frame
            self._read(deadline - time.monotonic())
        raise AssertionError(f"no {FrameType(frame_type).name} frame within {timeout} s")

    def drain(self) -> None:
        self._read(0.05)
        self._frames.clear()

    def heartbeats(self, every: float = 0.1) -> None:
        """Send heartbeats in the background, as a live board does, until ``stop_heartbeats``."""
        self._beating.set()

        def beat() -> None:
            while self._beating.is_set():
                try:
                    self.send(FrameType.HEARTBEAT)
                except OSError:
                    return
                time.sleep(every)

        self._beater = threading.Thread(target=beat, daemon=True)
        self._beater.start()

    def stop_heartbeats(self) -> None:
        self._beating.clear()
        if self._beater is not None:
            self._beater.join()

    def unplug(self) -> None:
        self.stop_heartbeats()
        os.close(self.master)

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return
        try:
            data = os.read(self.master, 4096)
        except OSError as err:  # EIO: nobody has the slave open (between the front end's reopen attempts)
            if err.errno != errno.EIO:
                raise
            time.sleep(0.01)
            return
        self._frames += [i for i in self._decoder.feed(data) if isinstance(i, Frame)]


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)

"""Framing shared by the serial button board and the clerk link.

A frame on the wire::

    STX(0x02) | version(0x01) | type | length (2 bytes, big-endian) | payload | CRC (2 bytes, big-endian)

The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no
final XOR; ``binascii.crc_hqx(data, 0xFFFF)``) over version, type, length and
payload: everything but the start byte and the CRC itself. The payload is a
UTF-8 JSON object, or empty (meaning ``{}``). ``docs/serial-protocol.md`` is
the reference a third party builds from; ``tests/test_frames.py`` parses its
example frames so the two cannot drift.

:class:`FrameDecoder` is pure: it is fed bytes and hands back frames and
:class:`~hcp.device.exc.FrameError` values in the order met. It never raises,
and resynchronises after garbage by scanning for the start byte, checking the
CRC and, on failure, skipping that one start byte and scanning on.
"""

from __future__ import annotations

import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hcp.device.exc import FrameError, FrameProblem

STX = 0x02
VERSION = 0x01
#: Start byte, version, type and length come before the payload.
HEADER_LEN = 5
CRC_LEN = 2
#: Frames declaring a longer payload are refused; keeps a garbage length from stalling the decoder long.
MAX_PAYLOAD = 1024


class FrameType(enum.IntEnum):
    """Frame types of both protocols; one number space, so a board on the clerk port is noticed."""

    HEARTBEAT = 0x01        # both ways, both protocols
    # button board
    KEY = 0x10              # board → terminal: a key went down
    VERSION_QUERY = 0x11    # terminal → board
    VERSION = 0x12          # board → terminal
    LED = 0x20              # terminal → board: which key LEDs are lit
    BEEP = 0x21             # terminal → board
    STATUS = 0x22           # terminal → board: the status light pattern
    # clerk link
    PROMPT = 0x30           # PC → terminal: ask the citizen to rate
    SIGN_IN = 0x31          # PC → terminal
    SIGN_OUT = 0x32         # PC → terminal
    PAUSE = 0x33            # PC → terminal: 暂停服务
    RESUME = 0x34           # PC → terminal
    QUERY_STATE = 0x35      # PC → terminal
    QUERY_OUTCOME = 0x36    # PC → terminal
    ACK = 0x40              # terminal → PC: the answer to a command
    STATE = 0x41            # terminal → PC: the answer to QUERY_STATE
    OUTCOME = 0x42          # terminal → PC: the answer to QUERY_OUTCOME


@dataclass(frozen=True)
class Frame:
    """One good frame: its type byte (a :class:`FrameType` value if known) and raw payload."""

    type: int
    payload: bytes = b""

    def fields(self) -> dict[str, Any]:
        """The payload as a JSON object (empty payload: ``{}``); raises :class:`FrameError` otherwise."""
        if not self.payload:
            return {}
        try:
            value = json.loads(self.payload.decode("utf-8"))
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise FrameError(FrameProblem.PAYLOAD, f"type 0x{self.type:02x}: not UTF-8 JSON ({err})") from None
        if not isinstance(value, dict):
            raise FrameError(FrameProblem.PAYLOAD, f"type 0x{self.type:02x}: payload is not a JSON object")
        return value

    @property
    def name(self) -> str:
        """The type's name for logs, or its number if unknown."""
        try:
            return FrameType(self.type).name
        except ValueError:
            return f"0x{self.type:02x}"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(frame_type: int, fields: Mapping[str, Any] | bytes | None = None) -> bytes:
    """The bytes of one frame; ``fields`` is a JSON object (compact UTF-8) or a raw payload."""
    if isinstance(fields, bytes):
        payload = fields
    elif fields:
        payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    else:
        payload = b""
    if len(payload) > MAX_PAYLOAD:
        raise FrameError(FrameProblem.TOO_LONG, f"payload of {len(payload)} bytes (at most {MAX_PAYLOAD})")
    body = bytes((VERSION, frame_type)) + len(payload).to_bytes(2, "big") + payload
    return bytes((STX,)) + body + crc16(body).to_bytes(2, "big")


Decoded = Frame | FrameError


class FrameDecoder:
    """Incremental decoder: ``feed()`` bytes as they arrive, get frames and errors back in order."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back as the start of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Decoded]:
        """Take ``data``; return every frame and error it completes. Never raises."""
        self._buf += data
        return self._drain()

    def expire(self) -> list[Decoded]:
        """The line went quiet mid-frame: give up on the partial frame and rescan what follows its start byte."""
        if not self._buf:
            return []
        held = len(self._buf)
        del self._buf[:1]
        error = FrameError(FrameProblem.TRUNCATED, f"line went quiet {held} bytes into a frame", skipped=1)
        return [error, *self._drain()]

    def _drain(self) -> list[Decoded]:
        out: list[Decoded] = []
        while (item := self._next()) is not None:
            out.append(item)
        return out

    def _next(self) -> Decoded | None:
        start = self._buf.find(STX)
        if start != 0:
            return self._skip_garbage(len(self._buf) if start < 0 else start)
        if len(self._buf) < HEADER_LEN:
            return None
        if self._buf[1] != VERSION:
            return self._skip_start(FrameProblem.VERSION, f"version {self._buf[1]} (this side speaks {VERSION})")
        length = int.from_bytes(self._buf[3:5], "big")
        if length > MAX_PAYLOAD:
            return self._skip_start(FrameProblem.LENGTH, f"declared payload of {length} bytes (at most "
                                    f"{MAX_PAYLOAD})")
        return self._complete(length)

    def _complete(self, length: int) -> Decoded | None:
        end = HEADER_LEN + length + CRC_LEN
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[1:HEADER_LEN + length])
        sent = int.from_bytes(self._buf[end - CRC_LEN:end], "big")
        if crc16(body) != sent:
            return self._skip_start(FrameProblem.CRC, f"type 0x{body[1]:02x}, CRC 0x{sent:04x} sent, "
                                    f"0x{crc16(body):04x} computed")
        del self._buf[:end]
        return Frame(body[1], body[HEADER_LEN - 1:])

    def _skip_garbage(self, count: int) -> Decoded | None:
        if count == 0:
            return None
        del self._buf[:count]
        return FrameError(FrameProblem.GARBAGE, f"{count} bytes before a start byte", skipped=count)

    def _skip_start(self, problem: FrameProblem, detail: str) -> FrameError:
        # Skip only the start byte: the real frame may begin inside what looked like this one.
        del self._buf[:1]
        return FrameError(problem, detail, skipped=1)

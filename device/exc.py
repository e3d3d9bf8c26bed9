"""Errors of the hardware front ends: GPIO panel, serial button board, clerk link."""

from __future__ import annotations

import enum

from hcp.exc import HcpError


class DeviceError(HcpError):
    """Root of the errors the hardware front ends raise."""


class PinError(DeviceError, RuntimeError):
    """A GPIO pin could not be claimed (in use, wrong number, no GPIO on this machine)."""


class PortError(DeviceError, OSError):
    """A serial port could not be opened or used."""


class FrameProblem(enum.StrEnum):
    """Why bytes on a serial line were not a good frame."""

    GARBAGE = "garbage"          # bytes before a start byte
    VERSION = "version"          # a start byte followed by an unknown protocol version
    LENGTH = "length"            # a declared payload length over the limit
    CRC = "crc"                  # a complete frame whose CRC does not match
    TRUNCATED = "truncated"      # a frame that stopped arriving part way
    PAYLOAD = "payload"          # a good frame whose payload is not the JSON object its type needs
    TOO_LONG = "too-long"        # a payload too large to send


class FrameError(DeviceError, ValueError):
    """Bytes that are not a good frame; ``problem`` says why and ``skipped`` how many bytes were dropped."""

    def __init__(self, problem: FrameProblem, detail: str, skipped: int = 0) -> None:
        self.problem = problem
        self.detail = detail
        self.skipped = skipped
        super().__init__(f"frame {problem.value}: {detail}")

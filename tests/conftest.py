"""Shared fixtures: a real Mosquitto on a free loopback port, per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcp.sim.broker import Broker

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto with the project's settings; stop()/start() keep its state."""
    with Broker(tmp_path / "broker") as running:
        yield running

"""Fault suite fixtures: the zygote for the whole session, and the figures table at the end of the run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
for folder in (HERE, HERE.parent):  # checker, terminal... and tests/stack.py
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from checker import HEADER, Figures  # noqa: E402
from terminal import Zygote  # noqa: E402

FIGURES: list[Figures] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="fault suite: run the long sizes (also HCP_FAULTS=long)")


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--long")) or os.environ.get("HCP_FAULTS") == "long"


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    with Zygote() as z:
        yield z


@pytest.fixture
def record() -> Iterator[list[Figures]]:
    yield FIGURES


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not FIGURES:
        return
    terminalreporter.section("fault suite figures")
    terminalreporter.line(HEADER)
    for figures in FIGURES:
        terminalreporter.line(figures.line())

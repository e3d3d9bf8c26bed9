"""The fault suite at CI size (``--long`` or HCP_FAULTS=long for the long run; scripts/run_faults.py prints more).

Each test runs one scenario of ``scenarios.py`` and holds it to the promise: every
rating a citizen was thanked for is at the collector exactly once, and the
collector holds no rating nobody made.
"""

from __future__ import annotations

import zlib

import pytest
from checker import Figures
from scenarios import SCENARIOS, Sizes, run

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_keeps_the_promise(name, tmp_path, zygote, long_run, record: list[Figures]) -> None:
    sizes = Sizes.long() if long_run else Sizes.ci()
    figures = run(name, tmp_path, zygote, sizes, seed=zlib.crc32(name.encode()))
    record.append(figures)
    print(figures.line())
    assert figures.problems == []
    assert (figures.lost, figures.duplicated, figures.unexpected) == (0, 0, 0), figures.line()
    assert figures.ok == figures.thanked > 0

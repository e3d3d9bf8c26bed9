"""Replay the fuzz corpus (fuzz/corpus/) with plain Python: every input once, through every target.

The corpus holds hand-made seeds, inputs atheris found to reach new code, and
past crashes (``crash-*``), so a fixed bug stays fixed. No atheris needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

from targets import TARGETS  # noqa: E402

CASES = sorted((name, path) for name in TARGETS for path in (FUZZ / "corpus" / name).iterdir())


def test_the_corpus_is_there() -> None:
    assert {name for name, _ in CASES} == set(TARGETS)


@pytest.mark.parametrize("target", list(TARGETS))
def test_every_corpus_input_keeps_the_parser_contract(target: str) -> None:
    failures = []
    for _, path in CASES:  # every input through every target: frames make odd payloads and vice versa
        try:
            TARGETS[target](path.read_bytes())
        except Exception as err:  # collect them all: one report names every input that breaks the contract
            failures.append(f"{path.name}: {type(err).__name__}: {err}")
    assert failures == []

"""Shared fixtures: a real Mosquitto on a free loopback port, per test."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from hcp.sim.broker import Broker
from tests.pg import Cluster

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

# `make test` is repeatable: each property test draws the same examples on every run and machine, so
# CI fails only on a change. `make explore` draws new random examples every run to look for new
# failures; a failure found there becomes an @example in the test. --hypothesis-profile overrides.
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HCP_HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Undo a test's ``setup_logging`` (the CLI run in-process): its handler writes to that test's captured
    stderr, which pytest closes, and a network thread still logging would print "--- Logging error ---"."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto with the project's settings; stop()/start() keep its state."""
    with Broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL 15 cluster on a free loopback port, for the whole session (tests/pg.py)."""
    with Cluster.create() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's collector store lives, once on each engine: an SQLite file, or a fresh PostgreSQL database's URL.

    The tests that take it run twice (ids ``[sqlite]`` and ``[postgresql]``), so the collector, lifecycle,
    channels and phone page are held to the same behaviour on both.
    """
    if request.param == "sqlite":
        return tmp_path / "collector.sqlite"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    name = cluster.fresh_database()
    request.addfinalizer(lambda: cluster.drop_database(name))
    return cluster.url(name)


@pytest.fixture
def pg_database(pg_cluster: Cluster) -> Iterator[str]:
    """The name of a new, empty database in the session's cluster: each test its own, dropped after it."""
    name = pg_cluster.fresh_database()
    yield name
    pg_cluster.drop_database(name)

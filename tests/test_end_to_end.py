"""The core promise with real processes: a thanked rating reaches the collector exactly once.

Real Mosquitto, ``hcp collector`` and ``hcp agent`` processes with the
simulated panel, real SQLite files; faults are the real thing: a stopped
broker, kill -9.
"""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter
from datetime import timedelta

import pytest
from stack import AgentProcess, CollectorProcess, wait_for

from hcp.domain import Kind, now_cst
from hcp.sync.outbox import Draft, Outbox


@pytest.fixture
def stack(broker, tmp_path, database):
    collector = CollectorProcess(broker, tmp_path / "collector", database=database)
    agent = AgentProcess(broker, tmp_path / "agent")
    yield collector, agent
    agent.stop()
    collector.stop()


def assert_exactly_once(collector: CollectorProcess, rating_ids: set[str], outcome: str = "accepted") -> None:
    rows = collector.rows()
    counts = Counter(rating_id for rating_id, _ in rows)
    assert {r for r, n in counts.items() if n > 1} == set(), "a rating stored twice"
    assert rating_ids - set(counts) == set(), "a thanked rating is missing at the collector"
    assert set(counts) - rating_ids == set(), "a rating nobody made"
    assert {o for _, o in rows} == {outcome}


def test_backlog_and_a_press_while_the_broker_is_down_arrive_exactly_once(broker, stack):
    collector, agent = stack
    backlog = 10_000
    collector.prepare({"t1": ("h1", "w1")}, [f"B{n:05d}" for n in range(backlog)] + ["LIVE1"])
    start = now_cst() - timedelta(minutes=1)
    with Outbox(agent.data / "outbox.sqlite") as outbox:
        made = outbox.add_many(Draft(kind=Kind.SERVICE, case_ids=(f"B{n:05d}",), score=5, rated_at=start,
                                     clock_synced=True, hall_id="h1", window_id="w1") for n in range(backlog))
    broker.stop()
    collector.start()
    agent.start()
    live = agent.rate("LIVE1", 4)
    assert live["link"] == "down"
    assert agent.outbox_depth() == backlog + 1

    broker.start()
    wait_for(lambda: agent.outbox_depth() == 0, 120, "the outbox did not drain")
    assert_exactly_once(collector, {r.rating_id for r in made} | {live["rating_id"]})


def test_kill_9_of_the_agent_between_commit_and_ack(broker, stack):
    collector, agent = stack
    collector.prepare({"t1": ("h1", "w1")}, ["C1", "C2", "C3"])
    agent.start()  # no collector yet: ratings are committed and published, but nobody acks
    thanked = [agent.rate(case, score)["rating_id"] for case, score in (("C1", 5), ("C2", 2), ("C3", 4))]
    assert agent.outbox_depth() == 3
    agent.kill()

    collector.start()
    agent.start()
    wait_for(lambda: agent.outbox_depth() == 0, 30, "the outbox did not drain after the restart")
    assert_exactly_once(collector, set(thanked))


def test_kill_9_of_the_collector_between_its_commit_and_its_ack(broker, stack):
    collector, agent = stack
    collector.prepare({"t1": ("h1", "w1")}, ["C1"])
    collector.start(die_at_ack=True)
    agent.start()
    wait_for(lambda: (agent.data / "outbox.sqlite").exists(), 10, "agent did not start")
    thanked = agent.rate("C1", 5)["rating_id"]
    assert collector.proc is not None
    assert collector.proc.wait(30) == -signal.SIGKILL  # it died at its first MQTT ack, after the commit
    collector.proc = None
    assert collector.rows() == [(thanked, "accepted")]  # committed before it died

    collector.start()  # the broker delivers the unacknowledged message again
    wait_for(lambda: agent.outbox_depth() == 0, 30, "the agent never got its ack")
    assert_exactly_once(collector, {thanked})


def test_the_same_ratings_delivered_again_are_stored_once(broker, stack):
    collector, agent = stack
    collector.prepare({"t1": ("h1", "w1")}, ["C1", "C2"])
    agent.start()
    thanked = {agent.rate("C1", 5)["rating_id"], agent.rate("C2", 3)["rating_id"]}
    agent.stop()
    outbox = agent.data / "outbox.sqlite"
    with sqlite3.connect(outbox) as conn:  # the rows as they were before any ack
        copied = conn.execute("SELECT rating_id, seq, prompt_id, rated_at, body FROM ratings").fetchall()
    assert len(copied) == 2
    collector.start()
    agent.start()
    wait_for(lambda: agent.outbox_depth() == 0, 30, "not drained")
    answered = collector.rows()
    for _ in range(3):  # e.g. an SD card restored from an old image: the same ratings again
        agent.stop()
        with sqlite3.connect(outbox) as conn:
            conn.executemany("INSERT INTO ratings (rating_id, seq, prompt_id, rated_at, body) "
                             "VALUES (?, ?, ?, ?, ?)", copied)
        agent.start()
        wait_for(lambda: agent.outbox_depth() == 0, 30, "replayed ratings were not answered")
    assert collector.rows() == answered
    assert_exactly_once(collector, thanked)

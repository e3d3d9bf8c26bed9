"""A clerk-button prompt carries no case id: the collector links the rating to the window's case."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_collector_store import KEY, NOON, case, ingest, outcomes, rating

from hcp.collector.store import Store
from hcp.config.policy import load_profile

MINUTE = timedelta(minutes=1)


@pytest.fixture
def store(database):
    with Store.open(database, load_profile("ulanqab"), KEY) as opened:  # button_link_minutes 30
        opened.register_device("h1-w1", "h1", "w1")
        yield opened


def linked(store, rating_id):
    return next(r for r in store.export() if r["rating_id"] == rating_id)


def test_links_to_the_unrated_case_closest_in_time_and_says_so(store):
    store.add_cases([case("early", completed_at=(NOON - 20 * MINUTE).isoformat()),
                     case("close", completed_at=(NOON - 2 * MINUTE).isoformat()),
                     case("other-window", window_id="w2", completed_at=NOON.isoformat())], NOON)
    press = rating(())
    [(outcome, reason)] = outcomes(ingest(store, press))
    assert outcome == "accepted"
    assert "linked to case close" in reason
    row = linked(store, press["rating_id"])
    assert row["case_ids"] == [] and row["linked_case_id"] == "close"
    assert [c["case_id"] for c in row["cases"]] == ["close"]

    second = rating(())  # the next button press at the window: the closest case left is "early"
    assert "linked to case early" in outcomes(ingest(store, second))[0][1]


def test_an_already_rated_case_is_skipped_and_a_failed_intake_never_linked(store):
    store.add_cases([case("rated", completed_at=(NOON - MINUTE).isoformat()),
                     case("refused", intake="failed", completed_at=NOON.isoformat()),
                     case("older", completed_at=(NOON - 10 * MINUTE).isoformat())], NOON)
    assert outcomes(ingest(store, rating(("rated",))))[0][0] == "accepted"
    [(outcome, reason)] = outcomes(ingest(store, rating(())))
    assert (outcome, "linked to case older" in reason) == ("accepted", True)


def test_outside_the_profile_window_it_waits_and_is_linked_when_the_case_arrives(store):
    store.add_cases([case("long-ago", completed_at=(NOON - 2 * timedelta(hours=1)).isoformat())], NOON)
    press = rating(())
    [(outcome, reason)] = outcomes(ingest(store, press))
    assert outcome == "pending" and "waiting for a case completed at window w1" in reason
    assert linked(store, press["rating_id"])["linked_case_id"] is None

    store.add_cases([case("late", completed_at=(NOON - MINUTE).isoformat())], NOON + MINUTE)
    row = linked(store, press["rating_id"])
    assert (row["outcome"], row["linked_case_id"]) == ("accepted", "late")
    assert row["ack_outcome"] == "pending"  # the first answer stands; the link is a later decision
    # The case is now rated: a rating naming it is a duplicate.
    assert outcomes(ingest(store, rating(("late",))))[0][0] == "duplicate"


def test_a_rating_id_sent_again_gets_the_same_answer(store):
    store.add_cases([case("c1", completed_at=NOON.isoformat())], NOON)
    press = rating(())
    first = ingest(store, press)
    assert ingest(store, press) == first
    assert store.totals()["ratings"] == 1

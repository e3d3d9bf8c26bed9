"""Hall ratings counted apart from service ratings: by hall, day or month, once per person per day."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest

from hcp.cli import main
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.pseudonym import load_or_create_key
from hcp.collector.stats import compute
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import CST, Kind, Outcome
from hcp.protocol import CaseRecord, RatingMessage

DAY1 = datetime(2026, 3, 10, 10, 0, tzinfo=CST)
DAY2 = DAY1 + timedelta(days=1)


def record(case_id: str, hall: str, applicant: str, completed: datetime) -> CaseRecord:
    return CaseRecord(case_id=case_id, hall_id=hall, window_id="w1", item_code="i1", item_name="营业执照",
                      clerk_id="E1", intake="ok", applicant_id=applicant, completed_at=completed)


def rate(store: Store, device: str, kind: str, case_id: str, score: int, at: datetime) -> tuple[str, str]:
    rating_id = str(uuid.uuid4())
    message = RatingMessage.model_validate_json(json.dumps({"v": 1, "device_id": device, "ratings": [
        {"rating_id": rating_id, "seq": 1, "kind": kind, "case_ids": [case_id], "score": score,
         "rated_at": at.isoformat(), "clock_synced": True}]}))
    [answer] = store.ingest(device, message, at)
    return rating_id, answer.outcome


def play(store: Store) -> dict[str, str]:
    """Hall h1 on two days, hall h2 on one; each visit rates the service, then the hall."""
    store.register_device("h1-w1", "h1", "w1")
    store.register_device("h2-w1", "h2", "w1")
    visits = [("a1", "h1", "P1", DAY1, 5, 4), ("a2", "h1", "P1", DAY1 + timedelta(hours=2), 4, 2),  # P1 again
              ("a3", "h1", "P2", DAY1, 3, 1), ("a4", "h1", "P1", DAY2, 5, 5), ("b1", "h2", "P3", DAY1, 2, 3)]
    hall_ids, outcomes = {}, []
    for case_id, hall, person, at, service, hall_score in visits:
        store.add_cases([record(case_id, hall, person, at - timedelta(minutes=5))], at)
        assert rate(store, f"{hall}-w1", "service", case_id, service, at)[1] is Outcome.ACCEPTED
        hall_ids[case_id], outcome = rate(store, f"{hall}-w1", "hall", case_id, hall_score, at + timedelta(seconds=30))
        outcomes.append(outcome)
    # P1's second hall rating on DAY1 is a duplicate: one hall rating per person per day.
    assert outcomes == [Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.ACCEPTED]
    return hall_ids


@pytest.fixture
def store(tmp_path):
    key = load_or_create_key(tmp_path / "collector.key")
    with Store.open(tmp_path / "collector.sqlite", load_profile("ulanqab"), key) as opened:
        yield opened


def test_hall_ratings_are_counted_apart_once_per_person_per_day(store):
    hall_ids = play(store)
    halls = {row["hall"]: row for row in compute(store, store.profile, ("hall",), kind=Kind.HALL)}
    h1, h2 = halls["h1"], halls["h2"]
    assert (h1["ratings"], h1["l5"], h1["l4"], h1["l1"], h1["l2"]) == (3, 1, 1, 1, 0)  # 4, 1, 5; the 2 was a duplicate
    assert h1["satisfaction"] == round((4 + 1 + 5) / 3 * 20, 2)
    assert (h2["ratings"], h2["l3"], h2["satisfaction"]) == (1, 1, 60.0)
    assert not set(h1) & {"participation", "completed", "defaults", "default_share"}  # per-case figures
    days = compute(store, store.profile, ("day", "hall"), kind=Kind.HALL)
    assert [(r["day"], r["hall"], r["ratings"]) for r in days] == [("2026-03-10", "h1", 2), ("2026-03-10", "h2", 1),
                                                                   ("2026-03-11", "h1", 1)]
    # The service statistics are untouched by the hall ratings: five service ratings.
    service = {row["hall"]: row for row in compute(store, store.profile, ("hall",))}
    assert (service["h1"]["ratings"], service["h2"]["ratings"]) == (4, 1)
    # An excluded hall rating is kept and counted apart.
    Lifecycle(store).exclude(hall_ids["a3"], "invalid", decided_by="sup1", reason="pressed by a child",
                             at=DAY2, raised_by_rater=True)
    [h1] = [r for r in compute(store, store.profile, ("hall",), kind=Kind.HALL) if r["hall"] == "h1"]
    assert (h1["ratings"], h1["l1"], h1["excluded_invalid"]) == (2, 0, 1)
    with pytest.raises(ValueError, match="'window' is not one of hall, day, month for hall ratings"):
        compute(store, store.profile, ("window",), kind=Kind.HALL)


def test_stats_command_reports_hall_ratings(tmp_path, store, capsys):
    play(store)
    store.close()
    db = ["--data-dir", str(tmp_path), "--policy", "ulanqab"]
    out = tmp_path / "report"
    assert main(["stats", "--kind", "hall", "-o", str(out), *db]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:3] == ["大厅", "评价数", "非常满意"] and "参评率" not in printed[0]
    assert printed[2].split()[:2] == ["h1", "3"]  # under the heading and its rule
    report = json.loads((out / "hall-ratings.json").read_text("utf-8"))
    assert report["kind"] == "hall" and [r["hall"] for r in report["ranking"]] == ["h2", "h1"]
    assert (out / "hall-ratings-hall.csv").read_text("utf-8").startswith("hall,ratings,l5")
    assert (out / "hall-chart.png").stat().st_size > 10_000  # hall ratings have a chart too
    assert main(["stats", "--kind", "hall", "--by", "clerk", *db]) == 2
    assert "for hall ratings" in capsys.readouterr().err

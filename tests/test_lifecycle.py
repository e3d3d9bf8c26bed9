"""The policy lifecycle against real SQLite: a scripted month per region preset, computed by hand.

May 2025 (劳动节 1-5 May off, 端午 31 May-2 June off). Two windows of hall h1:
w1 (clerk k1) and w2 (clerk k2). The script, the same in every region:

    c1  6 May  w1  rated 5
    c2  6 May  w1  rated 4, later declared invalid by its rater
    c3  7 May  w2  rated 3
    c5  8 May  w1  never rated: default at 00:00 16 May (the 7-day boundary)
    c6  8 May  w2  rated 5 at 23:59:59 on 15 May, the last day: accepted
    c7  9 May  w1  defaulted at 00:00 17 May; the terminal's rating (made 16 May) arrives after: rejected
    c8 12 May  w1  rated 1 by M  } M goes on the malicious raters' list
    c9 13 May  w2  rated 2 by M  }
    c10 20 May w1  rated 2: appealed in time and upheld as malicious (or excluded directly where no appeals)
    c4 30 May  w2  rated 1 on a Friday before 端午: follow-up deadlines over the holiday; an appeal one day late
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest

from hcp.collector.exc import Refused
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.stats import compute, disclosure, ranking, timeliness
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import CST, Outcome
from hcp.protocol import CaseRecord, RatingMessage

KEY = bytes(range(32))
M = "150202199001011234"  # the malicious rater


def t(day: int, hour: int = 10, minute: int = 0, second: int = 0, month: int = 5) -> datetime:
    return datetime(2025, month, day, hour, minute, second, tzinfo=CST)


CASES = [  # case, window, clerk, completed, applicant
    ("c1", "w1", "k1", t(6), "A"), ("c2", "w1", "k1", t(6, 11), "B"), ("c3", "w2", "k2", t(7), "C"),
    ("c5", "w1", "k1", t(8, 9), "E"), ("c6", "w2", "k2", t(8, 9, 30), "F"), ("c7", "w1", "k1", t(9), "G"),
    ("c8", "w1", "k1", t(12), M), ("c9", "w2", "k2", t(13), M), ("c10", "w1", "k1", t(20), "H"),
    ("c4", "w2", "k2", t(30), "D"),
]

# Per region: c4's follow-up deadlines (contact, rectify), the appeal window's end for c4, the default level.
EXPECTED = {
    "ordos": {"default": 4, "contact": t(5, 0, month=6), "rectify": None, "appeal_end": t(10, 0, month=6),
              "w1": [5, 4, 4], "spot": [True, False, True, False]},
    "qingdao-xihaian": {"default": None, "contact": t(4, 0, month=6), "rectify": t(10, 0, month=6),
                        "appeal_end": None, "w1": [5, 4], "spot": [False] * 4},
    "henan": {"default": 3, "contact": None, "rectify": t(15, 0, month=6), "appeal_end": "none",
              "w1": [5, 3, 3], "spot": [False] * 4},
    "ulanqab": {"default": 3, "contact": t(1, 10, 5, month=6), "rectify": t(24, 0, month=6), "appeal_end": "none",
                "w1": [5, 3, 3], "spot": [False] * 4},
    "siping": {"default": 3, "contact": t(1, 10, 5, month=6), "rectify": t(15, 0, month=6),
               "appeal_end": t(5, 0, month=6), "w1": [5, 3, 3], "spot": [False] * 4},
}


def case(case_id, window, clerk, completed, applicant) -> CaseRecord:
    return CaseRecord.model_validate({"case_id": case_id, "hall_id": "h1", "window_id": window, "item_code": "i1",
                                      "item_name": "营业执照", "clerk_id": clerk, "intake": "ok",
                                      "applicant_id": applicant, "completed_at": completed.isoformat()})


def rate(store: Store, case_id: str, score: int, rated_at: datetime, received_at: datetime | None = None,
         window: str | None = None):
    window = window or next(c[1] for c in CASES if c[0] == case_id)
    rating_id = str(uuid.uuid4())
    message = RatingMessage.model_validate_json(json.dumps({"v": 1, "device_id": f"h1-{window}", "ratings": [
        {"rating_id": rating_id, "seq": 1, "kind": "service", "case_ids": [case_id], "score": score,
         "rated_at": rated_at.isoformat(), "clock_synced": True}]}))
    [answer] = store.ingest(f"h1-{window}", message, received_at or rated_at)
    return rating_id, answer


@pytest.fixture(params=sorted(EXPECTED))
def region(request, database, tmp_path):
    profile = load_profile(request.param)
    with Store.open(database, profile, KEY) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.register_device("h1-w2", "h1", "w2")
        yield request.param, store, Lifecycle(store)


def play_month(name: str, store: Store, life: Lifecycle) -> dict[str, str]:
    """The script above; returns case → rating id of the ratings made."""
    expected = EXPECTED[name]
    ids = {}
    for record in CASES:
        store.add_cases([case(*record)], record[3])
    ids["c1"], _ = rate(store, "c1", 5, t(6, 10, 5))
    ids["c2"], _ = rate(store, "c2", 4, t(6, 11, 5))
    ids["c3"], _ = rate(store, "c3", 3, t(7, 10, 5))
    ids["c6"], answer = rate(store, "c6", 5, t(15, 23, 59, 59))
    assert answer.outcome is Outcome.ACCEPTED, "the last second of the 7th day is still in time"
    # The 7-day boundary: nothing is due one microsecond before midnight; c5 is due at midnight, once.
    assert life.run_defaults(t(16, 0) - timedelta(microseconds=1)).defaulted == 0
    assert life.run_defaults(t(16, 0)).defaulted == (1 if expected["default"] else 0)
    assert life.run_defaults(t(16, 0)).defaulted == 0
    # The collector was down over c7's deadline: the next run defaults it, dated at the deadline.
    assert life.run_defaults(t(17, 8)).defaulted == (1 if expected["default"] else 0)
    ids["c7"], late = rate(store, "c7", 4, t(16, 12), received_at=t(17, 9))
    if expected["default"]:
        assert late.outcome is Outcome.REJECTED and "default rating" in late.reason
    else:
        assert late.outcome is Outcome.ACCEPTED
    ids["c8"], _ = rate(store, "c8", 1, t(12, 10, 5))
    ids["c9"], _ = rate(store, "c9", 2, t(13, 10, 5))
    ids["c10"], _ = rate(store, "c10", 2, t(20, 10, 5))
    ids["c4"], _ = rate(store, "c4", 1, t(30, 10, 5))
    life.exclude(ids["c2"], "invalid", decided_by="sup1", reason="rater pressed by mistake", at=t(7),
                 raised_by_rater=True)
    life.list_malicious(M, actor="sup1", reason="insulting remarks on every visit", at=t(21))
    return ids


def test_scripted_month(region):
    name, store, life = region
    ids = play_month(name, store, life)
    _appeals(name, store, life, ids)
    _followups(name, store, life)
    _statistics(name, store, life)
    life.sign_head(t(31))  # verify fails on records no signed head covers
    assert life.verify() == []


def _appeals(name, store, life, ids):
    expected = EXPECTED[name]
    if expected["appeal_end"] == "none":
        with pytest.raises(Refused, match="no appeal procedure"):
            life.file_appeal(ids["c10"], filed_by="unit-w1", evidence="recording", at=t(21))
        life.exclude(ids["c10"], "malicious", decided_by="sup1", reason="verified: not true", at=t(22))
        return
    appeal = life.file_appeal(ids["c10"], filed_by="unit-w1", evidence="window recording 20 May", at=t(21))
    with pytest.raises(Refused, match="cannot review"):
        life.decide_appeal(appeal.id, upheld=True, kind="malicious", reviewer="unit-w1", reason="x", at=t(22))
    decided = life.decide_appeal(appeal.id, upheld=True, kind="malicious", reviewer="rev1",
                                 reason="the recording shows courteous service", at=t(28))
    assert decided.upheld
    with pytest.raises(Refused, match="already decided"):
        life.decide_appeal(appeal.id, upheld=False, kind=None, reviewer="rev1", reason="again", at=t(29))
    if name == "siping":  # review due 5 working days after 21 May: 22, 23, 26, 27, 28 May
        assert appeal.review_due == _utc(t(29, 0))
    if expected["appeal_end"] is None:
        assert life.file_appeal(ids["c4"], filed_by="unit-w2", evidence="late but no limit", at=t(20, month=6))
        return
    one_day_late = expected["appeal_end"] + timedelta(hours=9)
    with pytest.raises(Refused, match="appeal window"):
        life.file_appeal(ids["c4"], filed_by="unit-w2", evidence="recording", at=one_day_late)
    assert life.file_appeal(ids["c4"], filed_by="unit-w2", evidence="recording",
                            at=expected["appeal_end"] - timedelta(hours=15)).id


def _followups(name, store, life):
    expected = EXPECTED[name]
    found = life.followups(now=t(1, month=6))
    assert [f.score for f in found] == [1, 2, 2, 1]  # c8, c9, c10, c4 in order of receipt
    assert [f.spot_check for f in found] == expected["spot"]
    friday = found[3]
    assert friday.contact_due == (_utc(expected["contact"]) if expected["contact"] else None)
    assert friday.rectify_due == (_utc(expected["rectify"]) if expected["rectify"] else None)
    if expected["contact"]:
        just_before = expected["contact"] - timedelta(microseconds=1)
        assert "contact" not in friday.overdue(just_before)
        assert friday.overdue(expected["contact"])[0] == "contact"
        assert friday.id in [f.id for f in life.followups(now=expected["contact"], overdue_only=True)]
    # States: closing a follow-up never contacted is refused, with the path.
    first = found[0].id
    with pytest.raises(Refused, match="is open: cannot close"):
        life.step(first, "close", actor="fu1", note="", at=t(13))
    assert life.step(first, "contact", actor="fu1", note="called", at=t(13)).state == "contacted"
    with pytest.raises(Refused, match="--note"):
        life.step(first, "explain", actor="fu1", note=" ", at=t(14))
    life.step(first, "explain", actor="fu1", note="explained the legal basis", at=t(14))
    assert life.step(first, "close", actor="fu1", note="", at=t(15)).state == "closed"
    if expected["spot"][0]:
        assert life.step(first, "spot-check", actor="sup1", note="ok", at=t(16)).state == "spot-checked"
    else:
        with pytest.raises(Refused, match="not drawn"):
            life.step(first, "spot-check", actor="sup1", note="ok", at=t(16))
    life.set_contact(first, "13800000000")
    assert life.contact(first) == "13800000000"
    with pytest.raises(Refused, match="already has a contact"):
        life.set_contact(first, "13900000000")


def _statistics(name, store, life):
    expected = EXPECTED[name]
    rows = {row["window"]: row for row in compute(store, store.profile, ("window",))}
    w1, w2 = rows["h1/w1"], rows["h1/w2"]
    scores = expected["w1"]
    assert w1["ratings"] == len(scores)
    assert w1["satisfaction"] == round(sum(scores) / len(scores) * 20, 2)
    assert w1["defaults"] == (2 if expected["default"] else 0)
    assert (w1["excluded_invalid"], w1["excluded_malicious"], w1["excluded_listed"]) == (1, 1, 1)
    assert (w1["completed"], w1["rated"]) == (6, 4 if expected["default"] else 5)
    # w2: c3 (3), c6 (5), c4 (1) counted; c9 by M listed. 60 = mean 3 × 20.
    assert (w2["ratings"], w2["l5"], w2["l3"], w2["l1"]) == (3, 1, 1, 1)
    assert (w2["good"], w2["neutral"], w2["bad"], w2["bad_rate"]) == (1, 1, 1, 0.3333)
    assert (w2["satisfaction"], w2["participation"], w2["excluded_listed"]) == (60.0, 1.0, 1)
    assert [row["window"] for row in ranking(list(rows.values()))] == ["h1/w2", "h1/w1"]
    [month] = compute(store, store.profile, ("month",))
    assert month["month"] == "2025-05" and month["ratings"] == len(scores) + 3
    timely = timeliness(store, t(1, month=6))
    assert timely["followups"]["opened"] == 4 and timely["followups"]["closed"] == 1
    public = disclosure(store, store.profile)
    assert all(set(row) >= {"window", "satisfaction"} and "clerk" not in row for row in public)
    # Taking M off the list counts M's ratings again.
    life.unlist_malicious(M, actor="sup1", reason="appeal by M granted", at=t(5, month=6))
    w2_again = {row["window"]: row for row in compute(store, store.profile, ("window",))}["h1/w2"]
    assert w2_again["ratings"] == 4 and w2_again["excluded_listed"] == 0


def _utc(moment: datetime) -> str:
    from datetime import UTC

    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def test_a_rating_after_the_period_is_rejected_even_before_the_job_ran(database, tmp_path):
    with Store.open(database, load_profile("henan"), KEY) as store:
        store.register_device("h1-w1", "h1", "w1")
        store.add_cases([case("c1", "w1", "k1", t(6), "A")], t(6))
        _rid, answer = rate(store, "c1", 5, t(14, 0))
        assert answer.outcome is Outcome.REJECTED and "rating period ended on 2025-05-13" in answer.reason


def test_two_collectors_default_a_case_once(database, tmp_path):
    profile = load_profile("ulanqab")
    with Store.open(database, profile, KEY) as one, Store.open(database, profile,
                                                                            KEY) as two:
        one.add_cases([case(*record) for record in CASES], t(1))
        made = Lifecycle(one).run_defaults(t(31)).defaulted + Lifecycle(two).run_defaults(t(31)).defaulted
        assert made == len([c for c in CASES if c[3] < t(24, 0)])  # all completed before 24 May
        rows = one._conn.execute("SELECT rating_id, channel, score, day FROM ratings ORDER BY rating_id").fetchall()
        assert {r[1] for r in rows} == {"system-default"} and {r[2] for r in rows} == {3}
        # Dated at each case's deadline, not when the job ran: c5 completed 8 May counts on 16 May.
        assert ("default:case:c5", "system-default", 3, "2025-05-16") in rows


def test_refusals_name_the_reason(region):
    name, store, life = region
    ids = play_month(name, store, life)
    with pytest.raises(Refused, match="not a 差评"):
        life.exclude(ids["c1"], "malicious", decided_by="s", reason="r", at=t(31))
    with pytest.raises(Refused, match="raised by the rater"):
        life.exclude(ids["c1"], "invalid", decided_by="s", reason="r", at=t(31))
    with pytest.raises(Refused, match="already excluded as invalid"):
        life.exclude(ids["c2"], "invalid", decided_by="s", reason="r", at=t(31), raised_by_rater=True)
    with pytest.raises(Refused, match="already on the malicious"):
        life.list_malicious(M, actor="s", reason="again", at=t(31))
    with pytest.raises(Refused, match="not on the malicious"):
        life.unlist_malicious("nobody", actor="s", reason="r", at=t(31))
    if EXPECTED[name]["default"]:
        with pytest.raises(Refused, match="default rating"):
            life.exclude("default:case:c5", "invalid", decided_by="s", reason="r", at=t(31), raised_by_rater=True)

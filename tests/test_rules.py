"""The one-rating rules' shortcut for the common rating agrees with the general rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hcp.collector.rules import CaseRow, _judge_cases, _judge_one_service, judge
from hcp.config.policy import load_profile
from hcp.domain import CST, Outcome, utc_text

PROFILES = [load_profile(name) for name in ("henan", "ordos", "qingdao-xihaian", "siping", "ulanqab")]
DONE = datetime(2026, 5, 29, 23, 59, 59, 999999, tzinfo=CST)

cases = st.builds(
    lambda case_id, hall, intake, batch, seconds: CaseRow(case_id, hall, "w1", "I1", "x", "E1", intake, batch, None,
                                                          utc_text(DONE + timedelta(seconds=seconds))),
    st.sampled_from(["c1", "c2"]), st.sampled_from(["h1", "h2"]), st.sampled_from(["ok", "failed"]),
    st.none() | st.sampled_from(["b1", "b2"]), st.integers(-10 * 86400, 86400))


@given(profile=st.sampled_from(PROFILES), case_id=st.sampled_from(["c1", "c2", "c3"]),
       stored=st.lists(cases, max_size=2), hall=st.sampled_from(["h1", "h2"]),
       day=st.dates(min_value=date(2026, 5, 20), max_value=date(2026, 6, 20)))
def test_one_service_about_one_case_gets_the_general_verdict(profile, case_id, stored, hall, day) -> None:
    known = {row.case_id: row for row in stored}
    fast = _judge_one_service(case_id, day, "t1", hall, known, profile)
    assert fast == _judge_cases("service", (case_id,), day, "t1", hall, known, profile)
    assert judge("service", [case_id], day, "t1", hall, known, profile) == fast
    assert fast.outcome in (Outcome.ACCEPTED, Outcome.REJECTED, Outcome.PENDING)

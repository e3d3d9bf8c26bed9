"""The dashboard's kept counts (collector/console/hall_counter.py) against a full count after each kind of change."""

from __future__ import annotations

from datetime import timedelta

from hcp.collector.console.hall_figures import FigureHub, Names, hall_figures
from hcp.collector.lifecycle import Lifecycle
from tests.figures_support import NAMES, NOW, build, case, open_store, rate


def test_kept_counts_equal_a_full_count_after_each_change(tmp_path):
    store = open_store(tmp_path)
    ids = build(store)
    clock = [NOW]
    hub = FigureHub(store, store.profile, Names(**NAMES), clock=lambda: clock[0])

    def same() -> dict:
        kept = hub.figures("hall01")
        assert kept == hall_figures(store, store.profile, Names(**NAMES), "hall01", clock[0])
        return kept

    # A case completed yesterday whose record arrived then; it is rated later.
    store.add_cases([case("K3", "hall01", "w01", "E1", NOW - timedelta(days=1))], NOW - timedelta(days=1))
    first = same()
    store.add_cases([case("K1", "hall01", "w02", "E3", NOW - timedelta(minutes=20))], NOW)
    rate(store, "hall01", "w02", "K1", 2, NOW - timedelta(minutes=10), NOW + timedelta(seconds=1))  # 差评: a follow-up
    assert same()["periods"]["today"]["total"]["ratings"] == first["periods"]["today"]["total"]["ratings"] + 1
    # A terminal that was offline: a case completed two days ago, rated then, received now (a past day changes).
    store.add_cases([case("K2", "hall01", "w01", "E2", NOW - timedelta(days=2, hours=2))], NOW)
    rate(store, "hall01", "w01", "K2", 5, NOW - timedelta(days=2, hours=1), NOW + timedelta(seconds=2))
    assert same()["periods"]["week"]["total"]["ratings"] == first["periods"]["week"]["total"]["ratings"] + 2
    # A rating today of yesterday's case: yesterday's participation changes.
    rate(store, "hall01", "w01", "K3", 4, NOW + timedelta(seconds=3))
    assert same()["periods"]["week"]["total"]["rated"] == first["periods"]["week"]["total"]["rated"] + 3
    lifecycle = Lifecycle(store)
    lifecycle.exclude(ids["C02"], "invalid", decided_by="管理员", reason="评价人申请作废", at=NOW,
                      raised_by_rater=True)
    same()
    followups = {f.rating_id: f.id for f in lifecycle.followups(now=NOW)}
    lifecycle.step(followups[ids["C07"]], "close", actor="回访员", note="", at=NOW)
    assert same()["periods"]["today"]["total"]["open_followups"] == first["periods"]["today"]["total"]["open_followups"]
    clock[0] = NOW + timedelta(days=6)  # deadlines pass with no record written; the week is a new one
    overdue = same()["periods"]["today"]["total"]["overdue_followups"]
    assert overdue > first["periods"]["today"]["total"]["overdue_followups"]
    store.close()


def test_statistics_page_rows_equal_hcp_stats_for_every_dimension(tmp_path):
    from hcp.collector.console.stats_page import BY_NAMES, grouped
    from hcp.collector.stats import compute

    store = open_store(tmp_path)
    build(store)
    first, last = (NOW - timedelta(days=20)).date(), NOW.date()
    for by in BY_NAMES:
        dims = ("hall",) if by == "hall" else ("hall", by)
        mine, _trend = grouped(store, store.profile, ["hall01", "hall02"], first, last, by)
        assert mine == compute(store, store.profile, dims, start=first, end=last), by
    store.close()

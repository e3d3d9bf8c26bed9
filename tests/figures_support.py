"""A known data set for the console's figures: two halls over a month, through the store's own write paths.

Hall ``hall01`` has two windows and three clerks: window ratings of every
level, a paper entry with a comment holding HTML and a phone number, a
failed intake, a 7-day default, an exclusion, a person on the malicious
raters' list and 差评 follow-ups (one overdue, one rectified). ``hall02`` has
one rating, so a figure that forgets the hall shows it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from hcp.collector.channels import Channels, Entry
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.store import Store
from hcp.config.policy import load_profile
from hcp.domain import CST, Channel, Intake
from hcp.protocol import CaseRecord, Rating, RatingMessage

KEY = b"collector-key-for-tests-0123456789abcdef"
#: Thursday; the week began on Monday 9 March, the month on the 1st.
NOW = datetime(2026, 3, 12, 15, 0, tzinfo=CST)
HOSTILE = '<script>alert("x")</script><b>等候太久</b> 电话13812345678'
NAMES = {"halls": {"hall01": "乌兰察布市政务服务中心", "hall02": "集宁区便民服务中心"},
         "windows": {"hall01/w01": "1号窗口 综合受理", "hall01/w02": "2号窗口 不动产", "hall02/w01": "1号窗口"}}
APPLICANT = "150102199001011234"  # appears nowhere on a page


def open_store(path: Path) -> Store:
    return Store.open(path / "collector.sqlite", load_profile("ulanqab"), KEY, check_same_thread=False)


def case(case_id: str, hall: str, window: str, clerk: str, completed: datetime, *, applicant: str = APPLICANT,
         intake: Intake = Intake.OK) -> CaseRecord:
    return CaseRecord(case_id=case_id, hall_id=hall, window_id=window, item_code="I" + window[-1:],
                      item_name="不动产登记" if window == "w02" else "营业执照", clerk_id=clerk, intake=intake,
                      applicant_id=applicant, completed_at=completed)


def rate(store: Store, hall: str, window: str, case_id: str, score: int, at: datetime,
         received: datetime | None = None) -> str:
    """A window terminal's rating of ``case_id`` through the store's ingest (the MQTT path), given at ``at``
    and received at ``received`` (default: at once); its rating id."""
    device = f"{hall}-{window}"
    if store.device(device) is None:
        store.register_device(device, hall, window)
    rating = Rating(rating_id=str(uuid.uuid4()), seq=1, kind="service", case_ids=[case_id], score=score,
                    rated_at=at, clock_synced=True, reasons=["服务态度"] if score <= 2 else [])
    [answer] = store.ingest(device, RatingMessage(v=1, device_id=device, ratings=[rating]), received or at)
    assert answer.outcome == "accepted", answer
    return rating.rating_id


def build(store: Store) -> dict[str, str]:
    """Fill ``store`` with the known data set; returns rating ids by name."""
    ids: dict[str, str] = {}
    plan = [  # (case, window, clerk, completed days before NOW, score or None for unrated)
        ("C01", "w01", "E1", 0, 5), ("C02", "w01", "E1", 0, 4), ("C03", "w01", "E2", 0, 2),
        ("C04", "w02", "E3", 0, 5), ("C05", "w02", "E3", 0, None), ("C06", "w01", "E1", 2, 3),
        ("C07", "w02", "E3", 2, 1), ("C08", "w01", "E2", 3, 5), ("C09", "w02", "E3", 5, 5),
        ("C10", "w01", "E1", 9, 4), ("C11", "w02", "E3", 10, 5), ("C12", "w01", "E2", 9, None),
        ("C13", "w01", "E1", 15, 2),  # February: outside this month
    ]
    for case_id, window, clerk, days, score in plan:
        done = NOW - timedelta(days=days, hours=1)
        store.add_cases([case(case_id, "hall01", window, clerk, done)], done)
        if score is not None:
            ids[case_id] = rate(store, "hall01", window, case_id, score, done + timedelta(minutes=5))
    failed = case("C14", "hall01", "w01", "E2", NOW - timedelta(hours=2), intake=Intake.FAILED)
    store.add_cases([failed], NOW - timedelta(hours=2))
    # A paper form with a comment, on a case of a person later put on the malicious list.
    store.add_cases([case("C15", "hall01", "w02", "E3", NOW - timedelta(hours=3), applicant="BAD-1")], NOW)
    channels = Channels(store)
    result = channels.enter(Entry("C15", 1, Channel.PAPER, NOW - timedelta(hours=2), ("服务态度",), HOSTILE), NOW)
    ids["C15"] = result.rating_id
    store.add_cases([case("C16", "hall01", "w01", "E1", NOW - timedelta(hours=3))], NOW)
    result = channels.enter(Entry("C16", 5, Channel.PAPER, NOW - timedelta(hours=2), (), "窗口人员很耐心 👍"), NOW)
    ids["C16"] = result.rating_id
    store.add_cases([case("H2", "hall02", "w01", "F1", NOW - timedelta(hours=1))], NOW)
    ids["H2"] = rate(store, "hall02", "w01", "H2", 1, NOW - timedelta(minutes=30))
    lifecycle = Lifecycle(store)
    lifecycle.run_defaults(NOW)  # C12 (9 days ago) gets the default level
    lifecycle.exclude(ids["C08"], "invalid", decided_by="管理员", reason="评价人申请作废", at=NOW,
                      raised_by_rater=True)
    lifecycle.list_malicious("BAD-1", actor="管理员", reason="恶意差评", at=NOW)
    followups = {f.rating_id: f.id for f in lifecycle.followups(now=NOW)}
    lifecycle.step(followups[ids["C07"]], "contact", actor="回访员", note="已电话联系", at=NOW - timedelta(days=1))
    lifecycle.step(followups[ids["C07"]], "rectify", actor="回访员", note="已整改", at=NOW - timedelta(hours=5))
    return ids


class Reader:
    """A signed-in user as the console's auth gives one: roles per hall (None: every hall)."""

    def __init__(self, role: str, halls: tuple[str, ...] | None = None) -> None:
        self.role, self.hall_ids = role, halls

    def can(self, roles, hall_id=None) -> bool:
        """As the console's ``User.can``: one of ``roles`` for ``hall_id`` (None: for some hall)."""
        return self.role in roles and (self.hall_ids is None or hall_id is None or hall_id in self.hall_ids)

    def halls(self, roles):
        """As the console's ``User.halls``: the halls of ``roles``; None for every hall."""
        if self.role not in roles:
            return frozenset()
        return None if self.hall_ids is None else frozenset(self.hall_ids)


def figures_app(store: Store, user: Reader | None = None, **options):
    """The figure routes in a small Starlette app; ``user`` is set on every request, as the console's
    session middleware does once the two are joined."""
    from starlette.applications import Starlette

    from hcp.collector.console import figures
    from hcp.collector.console.hall_figures import Names

    app = Starlette(routes=figures.figures_routes())
    figures.install(app, store, Names(**NAMES), **options)

    async def signed_in(scope, receive, send):
        if scope["type"] == "http":
            scope.setdefault("state", {})["user"] = user
        await app(scope, receive, send)

    signed_in.state = app.state
    return signed_in


if __name__ == "__main__":  # python -m tests.figures_support FOLDER PORT: serve a store in another process
    import sys

    from hcp.collector.web import WebServer

    served = open_store(Path(sys.argv[1]))
    server = WebServer(figures_app(served, None, clock=lambda: NOW), "127.0.0.1", int(sys.argv[2]))
    server.start()
    server._thread.join()

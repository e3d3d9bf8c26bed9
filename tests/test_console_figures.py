"""The console's figures over real HTTP and in Debian's Chromium: dashboard, statistics, big screen, disclosure.

One server per module over the known data set of tests/figures_support.py;
the restart test starts its own on the same port.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from hcp.collector.console.figures import CHART_JS
from hcp.collector.console.hall_figures import period_starts
from hcp.collector.stats import compute
from hcp.collector.web import WebServer
from hcp.domain import china_date
from tests.figures_support import APPLICANT, HOSTILE, NOW, Reader, build, case, figures_app, open_store, rate

CHROMIUM = "/usr/bin/chromium"
SCREENS = Path(__file__).resolve().parent.parent / "docs" / "screens"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP, TABLET, TV = {"width": 1366, "height": 900}, {"width": 820, "height": 1180}, {"width": 1920, "height": 1080}
FIELDS = ("ratings", "l5", "l4", "l3", "l2", "l1", "good", "neutral", "bad", "good_rate", "neutral_rate", "bad_rate",
          "satisfaction", "defaults", "default_share", "excluded_invalid", "excluded_malicious", "excluded_listed",
          "completed", "rated", "participation")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("figures"))
    ids = build(store)
    reader = Reader("manager", ("hall01",))
    app = figures_app(store, reader, clock=lambda: NOW)  # the poller at its production pace (1 s)
    with WebServer(app, "127.0.0.1", 0) as server:
        yield {"base": f"http://127.0.0.1:{server.port}", "store": store, "ids": ids, "reader": reader}
    store.close()


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("needs Debian's chromium (scripts/install-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read(), dict(refused.headers)


def test_dashboard_figures_equal_hcp_stats(site):
    status, body, _ = get(site["base"] + "/halls/hall01/figures.json")
    assert status == 200
    data = json.loads(body)
    store, today = site["store"], china_date(NOW)
    for period, start in period_starts(today).items():
        shown = data["periods"][period]
        [hall] = [r for r in compute(store, store.profile, ("hall",), start=start, end=today) if r["hall"] == "hall01"]
        assert {k: shown["total"][k] for k in FIELDS} == {k: hall[k] for k in FIELDS}, period
        windows = {r["window"]: r for r in compute(store, store.profile, ("window",), start=start, end=today)}
        for row in shown["windows"]:
            assert {k: row[k] for k in FIELDS} == {k: windows[f"hall01/{row['id']}"][k] for k in FIELDS}
        clerks = {r["clerk"]: r for r in compute(store, store.profile, ("hall", "clerk"), start=start, end=today)
                  if r["hall"] == "hall01"}
        assert {row["id"]: row["ratings"] for row in shown["clerks"]} == {c: r["ratings"] for c, r in clerks.items()}
    month = data["periods"]["month"]["total"]
    # The data set reaches every rule: a default, an exclusion, a listed rater, a failed intake, February apart.
    assert (month["defaults"], month["excluded_invalid"], month["excluded_listed"]) == (1, 1, 1)
    assert month["completed"] == 14 and data["periods"]["today"]["total"]["ratings"] == 5
    assert (month["open_followups"], month["overdue_followups"]) == (4, 1)


def test_figures_refuse_the_wrong_hall_and_no_user(site):
    assert get(site["base"] + "/halls/hall02/figures.json")[0] == 403
    assert get(site["base"] + "/halls/hall02")[0] == 403
    assert get(site["base"] + "/stats")[0] == 403  # every hall: supervision only
    assert get(site["base"] + "/stats.csv?hall=hall02")[0] == 403
    site["reader"].role = "operator"
    try:
        assert get(site["base"] + "/halls/hall01")[0] == 403
    finally:
        site["reader"].role = "manager"
    assert get(site["base"] + "/halls/nowhere")[0] == 403
    status, body, headers = get(site["base"] + "/halls")
    assert status == 200 and "/halls/hall01" in body.decode() and "hall02" not in body.decode()
    assert "script-src 'self'" in headers["content-security-policy"]  # no inline script can run
    site["reader"].hall_ids = None  # a supervisor: every hall
    try:
        assert get(site["base"] + "/stats")[0] == 200 and get(site["base"] + "/halls/hall02")[0] == 200
    finally:
        site["reader"].hall_ids = ("hall01",)


def test_exports_have_chinese_headers_and_no_personal_data(site):
    status, body, headers = get(site["base"] + "/stats.csv?hall=hall01&by=clerk&from=2026-03-01&to=2026-03-12")
    assert status == 200 and "attachment" in headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["大厅", "工作人员", "评价数", "非常满意"]
    assert {r[1] for r in rows[1:]} == {"E1", "E2", "E3"}
    status, body, _ = get(site["base"] + "/stats.xlsx?hall=hall01&by=window&from=2026-03-01&to=2026-03-12")
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(body)).active
    assert [c.value for c in sheet[2]][:3] == ["大厅", "窗口", "评价数"]
    assert {sheet.cell(row, 2).value for row in range(3, sheet.max_row + 1)} == {"1号窗口 综合受理", "2号窗口 不动产"}
    text = " ".join(str(c.value) for row in sheet.iter_rows() for c in row)
    for secret in (APPLICANT, "BAD-1", *site["ids"].values()):
        assert secret not in text and secret not in body.decode("latin-1")


def test_public_pages_show_no_personal_data_and_escape_comments(site):
    store = site["store"]
    for path in ("/board/hall01", "/board/hall01?fragment=1", "/public?month=2026-03"):
        status, body, _ = get(site["base"] + path)
        page = body.decode()
        assert status == 200
        for secret in (APPLICANT, "BAD-1", "13812345678", "E1", "E2", "E3", "C15", *site["ids"].values()):
            assert secret not in page, (path, secret)
        assert "<script>alert" not in page and "<b>" not in page
    board = get(site["base"] + "/board/hall01")[1].decode()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;等候太久&lt;/b&gt; 电话＊＊＊＊＊＊" in board
    public = get(site["base"] + "/public?month=2026-03")[1].decode()
    assert "差评整改率" in public and "1号窗口 综合受理" in public and "乌兰察布市政务服务中心" in public
    assert "hall01" not in public and ">w01<" not in public
    assert HOSTILE in [text for *_, text in store.recent_comments("hall01", 5)]  # stored as written, masked on screen


def test_board_escapes_and_hides_in_the_browser(site, browser):
    page = browser.new_page(viewport=TV, locale="zh-CN")
    page.goto(site["base"] + "/board/hall01")
    comment = page.locator(".comments q").filter(has_text="等候太久")
    assert comment.inner_text().startswith('<script>alert("x")</script><b>')  # shown as text, not run
    assert page.locator("script").count() == 1 and page.locator(".comments b").count() == 0
    page.wait_for_selector("#live[data-state=live]")
    page.screenshot(path=str(SCREENS / "board-1920x1080.png"))
    page.close()


def test_live_update_within_two_seconds(site, browser):
    page = browser.new_page(viewport=DESKTOP, locale="zh-CN")
    page.goto(site["base"] + "/halls/hall01")
    page.wait_for_selector("#live[data-state=live]")
    before = int(page.locator("#kpi-ratings").inner_text())
    store = site["store"]
    store.add_cases([case("L1", "hall01", "w01", "E1", NOW - timedelta(minutes=10))], NOW)
    started = time.monotonic()
    rate(store, "hall01", "w01", "L1", 5, NOW)
    expect(page.locator("#kpi-ratings")).to_have_text(str(before + 1), timeout=2000)
    assert time.monotonic() - started < 2.0
    page.close()


def test_screens_of_the_dashboard_stats_and_disclosure(site, browser):
    assert CHART_JS.exists(), "chart.js missing: run make venv (npm ci in collector/console/static)"
    stats = "/stats?hall=hall01&by=window&from=2026-02-20&to=2026-03-12"
    for size, viewport in (("desktop", DESKTOP), ("tablet", TABLET)):
        page = browser.new_page(viewport=viewport, locale="zh-CN")
        page.goto(site["base"] + "/halls/hall01")
        page.wait_for_selector("#live[data-state=live]")
        page.get_by_role("tab", name="本月").click()
        assert page.locator("[data-panel=month]").is_visible()
        page.screenshot(path=str(SCREENS / f"console-dashboard-{size}.png"), full_page=True)
        page.goto(site["base"] + stats)
        page.wait_for_selector("body[data-charts=drawn]")
        assert page.locator("canvas").count() == 3
        page.screenshot(path=str(SCREENS / f"console-stats-{size}.png"), full_page=True)
        page.goto(site["base"] + "/public?month=2026-03")
        page.screenshot(path=str(SCREENS / f"console-public-{size}.png"), full_page=True)
        page.close()


def test_board_reconnects_after_the_server_restarts(tmp_path, browser):
    store = open_store(tmp_path)
    build(store)
    port = _free_port()
    server = _serve(tmp_path, port)
    page = browser.new_page(viewport=TV, locale="zh-CN")
    try:
        page.goto(f"http://127.0.0.1:{port}/board/hall01")
        page.wait_for_selector("#live[data-state=live]")
        before = int(page.locator("#board-ratings").inner_text())
        server.kill()  # the collector's console dies, as in a crash or a restart
        server.wait(10)
        page.wait_for_selector("#live[data-state=reconnecting]", timeout=5000)
        store.add_cases([case("R1", "hall01", "w02", "E3", NOW - timedelta(minutes=10))], NOW)
        rate(store, "hall01", "w02", "R1", 4, NOW)  # arrives while the console is down
        server = _serve(tmp_path, port)
        page.wait_for_selector("#live[data-state=live]", timeout=10000)
        expect(page.locator("#board-ratings")).to_have_text(str(before + 1), timeout=5000)
    finally:
        page.close()
        server.kill()
        server.wait(10)
        store.close()


def _serve(folder: Path, port: int) -> subprocess.Popen:
    """The figure routes over the store in ``folder``, served by another process on ``port``."""
    process = subprocess.Popen([sys.executable, "-m", "tests.figures_support", str(folder), str(port)],
                               cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the console did not start")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

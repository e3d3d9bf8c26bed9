"""The phone rating page in a real headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from hcp.collector.channels import Channels
from hcp.collector.web import PageSettings, RatingPage, WebServer, create_app
from hcp.ui.receipt import make_token
from tests.channel_support import NOW, RECEIPT_KEY, case, open_store, window_rating

CHROMIUM = "/usr/bin/chromium"
SCREENS = Path(__file__).resolve().parent.parent / "docs" / "screens"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 360, "height": 740}

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium (scripts/install-deps.sh)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def site(database, tmp_path):
    store = open_store(tmp_path, database=database)
    store.add_cases([case("C1"), case("C2"), case("C3")], NOW)
    settings = PageSettings(RECEIPT_KEY, {"hall01": "乌兰察布市政务服务中心"}, {"hall01/w03": "3号窗口"})
    with WebServer(create_app(RatingPage(store, settings, clock=lambda: NOW)), "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.port}", store
    store.close()


def url(base: str, case_id: str, expiry_offset: timedelta = timedelta(days=7), key: bytes = RECEIPT_KEY) -> str:
    return f"{base}/r/{case_id}?t={make_token(key, case_id, int((NOW + expiry_offset).timestamp()))}"


def phone(browser):
    return browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)


def star(page, label: str):
    return page.get_by_role("radiogroup", name="您对本次服务的评价").get_by_label(label)


def tap_star(page, score: int) -> None:
    page.locator(f'label[for="score-{score}"]').tap()  # what a thumb does: the star, not the hidden radio
    assert page.locator(f"#score-{score}").is_checked()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENS / f"phone-{name}.png"), full_page=True)


def test_scan_rate_thanks(browser, site):
    base, store = site
    page = phone(browser)
    response = page.goto(url(base, "C1"))
    assert response.status == 200
    body = page.content()
    assert "乌兰察布市政务服务中心" in body and "3号窗口" in body and "个体工商户设立登记" in body
    assert "E1024" not in body and "A-1" not in body  # no clerk id, no applicant
    assert not page.locator("#reasons").is_visible()  # reasons only after a 差评
    shot(page, "form")
    tap_star(page, 2)
    assert page.locator("#reasons").is_visible()
    assert page.locator("#level").inner_text() == "2星 不满意"
    shot(page, "reasons")
    page.get_by_role("button", name="提交评价").click()
    assert page.get_by_role("alert").inner_text().startswith("差评请至少选择")  # 差评 without reason or text
    page.get_by_label("服务效率").check()
    page.get_by_label("意见建议（选填）").fill("等候时间太长")
    page.get_by_role("button", name="提交评价").click()
    assert page.get_by_role("heading", name="感谢您的评价").is_visible()
    shot(page, "thanks")
    [(channel, score, reasons)] = store._conn.execute("SELECT channel, score, reasons FROM ratings").fetchall()
    assert (channel, score, reasons) == ("qr", 2, '["服务效率"]')
    assert store._conn.execute("SELECT text FROM rating_texts").fetchone() == ("等候时间太长",)
    assert store._conn.execute("SELECT count(*) FROM followups").fetchone() == (1,)  # the 差评 opened one


def test_expired_and_forged_tokens(browser, site):
    base, _store = site
    page = phone(browser)
    assert page.goto(url(base, "C1", timedelta(seconds=-1))).status == 410
    assert page.get_by_role("heading", name="二维码已过期").is_visible()
    shot(page, "expired")
    assert page.goto(url(base, "C1", key=b"some-other-key-of-enough-length!")).status == 403
    assert page.get_by_role("heading", name="二维码无效").is_visible()
    shot(page, "forged")
    copied = url(base, "C2").replace("/r/C2", "/r/C1")  # a good token for another case
    assert page.goto(copied).status == 403


def test_a_case_over_its_request_budget(browser, database, tmp_path):
    store = open_store(tmp_path, database=database)
    store.add_cases([case("C1")], NOW)
    settings = PageSettings(RECEIPT_KEY, limit_per_case="1/minute")
    with WebServer(create_app(RatingPage(store, settings, clock=lambda: NOW)), "127.0.0.1", 0) as server:
        page = phone(browser)
        base = f"http://127.0.0.1:{server.port}"
        assert page.goto(url(base, "C1")).status == 200
        response = page.goto(url(base, "C1"))
        assert response.status == 429 and 1 <= int(response.headers["retry-after"]) <= 60
        assert page.get_by_role("heading", name="请求过于频繁").is_visible()
        shot(page, "throttled")
    store.close()


def test_second_rating_of_the_same_case(browser, site):
    base, store = site
    page = phone(browser)
    page.goto(url(base, "C2"))
    window_rating(store, "C2", 5)  # rated at the window while the phone's form is open
    tap_star(page, 5)
    page.get_by_role("button", name="提交评价").click()
    assert page.get_by_role("heading", name="您已评价").is_visible()
    shot(page, "already-rated")
    assert page.goto(url(base, "C2")).status == 409
    order = store._conn.row_order
    outcomes = store._conn.execute(f"SELECT channel, ack_outcome FROM ratings ORDER BY {order}").fetchall()
    assert outcomes == [("window", "accepted")]


def test_phone_width_keyboard_and_weight(browser, site):
    base, _store = site
    page = phone(browser)
    sizes = []
    page.on("response", lambda r: sizes.append(len(r.body())))
    page.goto(url(base, "C3"))
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert sizes and sizes[0] < 12_000  # the whole page, one request: no fonts, images or framework
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowRight")  # the first star group takes focus; arrows move within it, left to right
    page.keyboard.press("ArrowRight")
    assert page.evaluate("[document.activeElement.name, document.activeElement.value]") == ["score", "3"]
    assert page.locator("#level").inner_text() == "3星 基本满意"
    for name in ("5星 非常满意", "1星 非常不满意", "意见建议（选填）"):
        assert (star(page, name) if "星" in name else page.get_by_label(name)).count() == 1
    shot(page, "phone-width")
    Channels  # noqa: B018 (imported for the reader: the page writes through it)

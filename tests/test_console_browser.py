"""Each role's main flow through the console in a real headless Chromium (Debian's, driven by Playwright),
with screenshots at desktop (1366x900) and tablet (820x1180) widths in docs/screens/console-*.png."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from hcp.collector.console.app import build_app
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.web import WebServer
from tests.channel_support import NOW
from tests.console_support import CONSOLE_NOW, CONTACT, HOSTILE, PASSWORD, SETTINGS, seeded_store

CHROMIUM = "/usr/bin/chromium"
SCREENS = Path(__file__).resolve().parent.parent / "docs" / "screens"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium (scripts/install-deps.sh)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The console over a seeded hall: C2's 差评 explained and closed (drawn for a spot check), and appealed."""
    store, seeded = seeded_store(tmp_path_factory.mktemp("console"))
    life = Lifecycle(store)
    c2 = seeded.followups["C2"]
    for minutes, action, note in ((10, "contact", "已电话回访"), (20, "explain", "窗口人员已向群众解释办理要求"),
                                  (30, "close", "")):
        life.step(c2, action, actor="fu", note=note, at=NOW + timedelta(minutes=minutes))
    life.file_appeal(seeded.ratings["C2"], filed_by="mgr", evidence="监控录像显示服务规范，材料要求已一次性告知",
                     at=NOW + timedelta(minutes=40))
    app = build_app(store, SETTINGS, clock=lambda: CONSOLE_NOW)
    with WebServer(app, "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.port}", store, seeded, app.state.console
    store.close()


def _login(browser, base: str, name: str):
    page = browser.new_page(viewport=DESKTOP)
    page.goto(base + "/login")
    page.get_by_label("账号").fill(name)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(base + "/")
    return page


def nav(page, label: str) -> None:
    """Follow a link of the main navigation."""
    page.get_by_role("navigation", name="主导航").get_by_role("link", name=label).click()


def shots(page, name: str) -> None:
    """The page at desktop and tablet widths, whole."""
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(SCREENS / f"console-{name}-desktop.png"), full_page=True)
    page.set_viewport_size(TABLET)
    page.screenshot(path=str(SCREENS / f"console-{name}-tablet.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_login_page_and_a_wrong_password(browser, site):
    base, _store, _seeded, _console = site
    page = browser.new_page(viewport=DESKTOP)
    page.goto(base + "/queue")
    assert page.url.startswith(base + "/login?next=")
    page.get_by_label("账号").fill("fu")
    page.get_by_label("密码").fill("not-the-password")
    page.get_by_role("button", name="登录").click()
    assert "账号或密码错误" in page.get_by_role("alert").inner_text()
    shots(page, "login")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(base + "/queue")  # back where the login began


def test_followup_officer_works_a_bad_rating_through(browser, site):
    base, store, seeded, console = site
    page = _login(browser, base, "fu")
    nav(page, "差评工作台")
    assert page.get_by_role("heading", name="差评工作台").is_visible()
    assert page.locator(".badge.late").count() >= 1  # C0's 差评 is past its contact deadline
    assert "东胜区" not in page.content()  # hall02 is not this officer's
    shots(page, "queue")
    page.get_by_role("link", name=f"#{seeded.followups['C1']}").click()
    assert page.locator(".text").first.inner_text() == HOSTILE  # shown as the citizen wrote it, as text
    assert CONTACT not in page.content()
    page.get_by_role("button", name="查看联系方式").click()
    assert page.get_by_text(CONTACT).is_visible()
    shots(page, "followup-contact")
    page.get_by_label("已联系：情况说明").fill("已电话联系群众，了解情况")
    page.get_by_role("button", name="记录“已联系”").click()
    assert page.get_by_role("status").inner_text() == "已记录：已联系。"
    page.get_by_label("已整改：情况说明（必填）").fill("已调整窗口排班，减少等候")
    page.get_by_role("button", name="记录“已整改”").click()
    page.get_by_role("button", name="记录“办结”").click()
    assert page.get_by_role("heading", name=f"差评回访 #{seeded.followups['C1']} 已办结").is_visible()
    shots(page, "followup")
    with console.lock:
        assert store.followup(seeded.followups["C1"]).state == "closed"


def test_hall_manager_spot_checks_and_appeals(browser, site):
    base, store, seeded, console = site
    page = _login(browser, base, "mgr")
    page.goto(f"{base}/followups/{seeded.followups['C2']}")
    assert not page.get_by_role("button", name="查看联系方式").count()  # the contact is the follow-up officer's
    page.get_by_label("抽查：情况说明").fill("电话抽查，群众认可解释")
    page.get_by_role("button", name="记录“抽查”").click()
    assert page.get_by_role("status").inner_text() == "已记录抽查。"
    page.goto(f"{base}/ratings/{seeded.ratings['C1']}")
    page.get_by_label("提出申诉：理由与证据").fill("当日系统故障导致等候，非窗口人员原因")
    page.get_by_role("button", name="提交申诉").click()
    assert page.get_by_role("status").inner_text() == "申诉已提交。"
    nav(page, "申诉与剔除")
    shots(page, "appeals")
    with console.lock:
        assert store.followup(seeded.followups["C2"]).state == "spot-checked"
        assert len(store.appeals_of_rating(seeded.ratings["C1"])) == 1


def test_reviewer_upholds_an_appeal_then_reverses_the_exclusion(browser, site):
    base, store, seeded, console = site
    page = _login(browser, base, "rev")
    nav(page, "申诉与剔除")
    with console.lock:
        [appeal] = store.appeals_of_rating(seeded.ratings["C2"])
    page.get_by_role("link", name=f"#{appeal.id}", exact=True).click()
    page.get_by_label("结论").select_option("1")
    page.get_by_label("申诉成立时，该差评认定为").select_option("malicious")
    page.get_by_label("复核意见").fill("经核实监控录像，差评不属实")
    shots(page, "appeal")
    page.get_by_role("button", name="提交复核结论").click()
    assert page.get_by_role("status").inner_text() == "复核结论已记录。"
    page.get_by_role("link", name=seeded.ratings["C2"]).click()
    assert page.get_by_text("已剔除").first.is_visible()
    page.get_by_label("撤销剔除：理由").fill("群众补充了新证据，恢复计入")
    page.get_by_role("button", name="撤销剔除").click()
    assert page.get_by_role("status").inner_text() == "已撤销剔除，该评价重新计入统计。"
    assert page.get_by_text("曾剔除，已撤销").is_visible()
    shots(page, "rating")
    with console.lock:
        exclusion = store.exclusion_view(seeded.ratings["C2"])
    assert exclusion is not None and not exclusion.in_force
    nav(page, "申诉与剔除")
    rows = page.get_by_role("row").filter(has_text=seeded.ratings["C2"][:13])
    assert rows.filter(has_text="恶意差评").filter(has_text="已撤销剔除").count() == 1  # the exclusion's row


def test_supervisor_reads_the_audit_log_and_looks_up_a_case(browser, site):
    base, _store, _seeded, _console = site
    page = _login(browser, base, "sup")
    nav(page, "评价查询")
    page.get_by_label("办件编号或评价编号").fill("C1")
    page.get_by_role("button", name="查询").click()
    assert page.get_by_role("heading", name="办件 C1").is_visible()
    assert "A-1" not in page.content()  # never the applicant
    shots(page, "lookup")
    nav(page, "审计日志")
    body = page.locator("table").inner_text()
    assert "查看联系方式" in body and "登录" in body and CONTACT not in page.content()
    shots(page, "audit")
    assert not page.get_by_role("button", name="推送到所选终端").count()
    page.goto(base + "/fleet")
    assert not page.get_by_role("button", name="推送到所选终端").count()  # read only


def test_operator_sees_the_fleet_and_an_older_settings_version_is_refused(browser, site):
    base, _store, _seeded, _console = site
    page = _login(browser, base, "ops")
    nav(page, "终端运维")
    row = page.get_by_role("row").filter(has_text="hall01-w03")
    assert "在线" in row.inner_text() and "0.1.0" in row.inner_text()
    assert "hall02-w01" not in page.content()  # another hall's terminal
    page.get_by_label("选择 hall01-w03").check()
    page.get_by_label("设置版本号（须高于终端当前版本）").fill("2")
    page.get_by_role("button", name="推送到所选终端").click()
    assert "设置版本 2 不高于终端正在使用的版本（hall01-w03 为 3）" in page.get_by_role("alert").inner_text()
    assert "从未上线" in page.get_by_role("row").filter(has_text="hall01-w04").inner_text()
    shots(page, "fleet")

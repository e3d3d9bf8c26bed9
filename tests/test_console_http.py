"""The console's security over real HTTP (uvicorn on a free port): roles and halls, CSRF, sessions, throttling,
escaping, and no personal data in its logs."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

import pytest

from hcp.collector.console.accounts import Accounts
from hcp.collector.console.app import ConsoleSettings, build_app
from hcp.collector.console.auth import SESSION_COOKIE
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.web import WebServer
from tests.channel_support import NOW
from tests.console_support import CONSOLE_NOW, CONTACT, PASSWORD, SETTINGS, Client, logged_in, seeded_store


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One console for the module: (port, store, seeded, console); an appeal of the C2 差评 waits for review."""
    store, seeded = seeded_store(tmp_path_factory.mktemp("console"))
    appeal = Lifecycle(store).file_appeal(seeded.ratings["C2"], filed_by="mgr", evidence="监控录像显示服务规范",
                                          at=NOW + timedelta(minutes=30))
    seeded.followups["appeal"] = appeal.id
    Accounts(store, actor="cli:test").add("victim", PASSWORD, [("manager", "hall01")])
    app = build_app(store, SETTINGS, clock=lambda: CONSOLE_NOW)
    with WebServer(app, "127.0.0.1", 0) as server:
        yield server.port, store, seeded, app.state.console
    store.close()


def _state(store, seeded) -> tuple:
    """Everything a refused request must leave as it was."""
    return (tuple(f.state for f in store.followups()), tuple(map(store.exclusion_view, seeded.ratings.values())),
            tuple((a.id, a.decided_at) for a in store.appeals()))


def _cases(seeded) -> list[tuple[str, str, str, dict | None]]:
    c1, c1_rating = seeded.followups["C1"], seeded.ratings["C1"]
    appeal = seeded.followups["appeal"]
    step = {"action": "contact", "note": "n"}
    return [
        # pages: wrong role, then wrong hall
        ("ops", "GET", "/queue", None), ("rev", "GET", "/queue", None), ("fu2", "GET", "/queue?hall=hall01", None),
        ("fu2", "GET", f"/followups/{c1}", None), ("ops", "GET", f"/followups/{c1}", None),
        ("mgr2", "GET", f"/ratings/{c1_rating}", None), ("ops", "GET", f"/ratings/{c1_rating}", None),
        ("mgr2", "GET", "/lookup?q=C1", None), ("ops", "GET", "/lookup?q=C1", None),
        ("mgr", "GET", "/fleet", None), ("ops2", "GET", "/fleet?hall=hall01", None),
        ("mgr", "GET", "/audit", None), ("ops", "GET", "/audit", None), ("fu", "GET", "/audit", None),
        ("ops", "GET", "/appeals", None), ("rev2", "GET", "/appeals?hall=hall01", None),
        ("rev2", "GET", f"/appeals/{appeal}", None),
        # actions: wrong role (supervisors read only), then wrong hall
        ("mgr", "POST", f"/followups/{c1}/step", step), ("sup", "POST", f"/followups/{c1}/step", step),
        ("fu2", "POST", f"/followups/{c1}/step", step), ("fu", "POST", f"/followups/{c1}/step",
                                                          {"action": "spot-check", "note": ""}),
        ("mgr", "POST", f"/followups/{c1}/reveal", {}), ("sup", "POST", f"/followups/{c1}/reveal", {}),
        ("fu2", "POST", f"/followups/{c1}/reveal", {}),
        ("rev", "POST", "/appeals", {"rating_id": c1_rating, "evidence": "e"}),
        ("sup", "POST", "/appeals", {"rating_id": c1_rating, "evidence": "e"}),
        ("mgr2", "POST", "/appeals", {"rating_id": c1_rating, "evidence": "e"}),
        ("mgr", "POST", f"/appeals/{appeal}/decide", {"upheld": "1", "kind": "malicious", "reason": "r"}),
        ("sup", "POST", f"/appeals/{appeal}/decide", {"upheld": "1", "kind": "malicious", "reason": "r"}),
        ("rev2", "POST", f"/appeals/{appeal}/decide", {"upheld": "1", "kind": "malicious", "reason": "r"}),
        ("mgr", "POST", f"/ratings/{c1_rating}/exclude", {"kind": "malicious", "reason": "r"}),
        ("sup", "POST", f"/ratings/{c1_rating}/exclude", {"kind": "malicious", "reason": "r"}),
        ("rev2", "POST", f"/ratings/{c1_rating}/exclude", {"kind": "malicious", "reason": "r"}),
        ("sup", "POST", f"/ratings/{c1_rating}/reverse", {"reason": "r"}),
        ("rev2", "POST", f"/ratings/{c1_rating}/reverse", {"reason": "r"}),
        ("mgr", "POST", "/fleet/push", {"device": "hall01-w03", "version": "9"}),
        ("sup", "POST", "/fleet/push", {"device": "hall01-w03", "version": "9"}),
        ("ops2", "POST", "/fleet/push", {"device": "hall01-w03", "version": "9"}),
    ]


def test_every_page_and_action_refuses_the_wrong_role_and_the_wrong_hall(site):
    port, store, seeded, console = site
    clients: dict[str, Client] = {}
    with console.lock:
        before = _state(store, seeded)
    for user, method, path, form in _cases(seeded):
        client = clients.setdefault(user, logged_in(port, user))
        reply = client.get(path) if method == "GET" else client.post(path, form)
        assert reply.status == 403, (user, method, path, reply.status)
        assert "无权访问" in reply.text
    with console.lock:
        assert _state(store, seeded) == before


def test_without_a_session_pages_lead_to_login_and_actions_are_refused(site):
    port, _store, seeded, _console = site
    client = Client(port)
    reply = client.get("/queue?hall=hall01")
    assert reply.status == 303 and reply.location == "/login?next=%2Fqueue%3Fhall%3Dhall01"
    assert client.post(f"/followups/{seeded.followups['C1']}/step", {"action": "contact", "note": "n"}).status == 403


def test_a_post_without_its_csrf_token_is_refused(site):
    port, store, seeded, console = site
    client = logged_in(port, "fu")
    path = f"/followups/{seeded.followups['C2']}/step"
    with console.lock:
        before = _state(store, seeded)
    assert client.post(path, {"action": "contact", "note": "n"}, csrf=False).status == 403
    assert client.post(path, {"action": "contact", "note": "n", "csrf": "forged-token"}).status == 403
    other = logged_in(port, "fu")  # another session's token is no good either
    assert client.post(path, {"action": "contact", "note": "n", "csrf": other.csrf}).status == 403
    with console.lock:
        assert _state(store, seeded) == before
    login = Client(port)
    login.get("/login")
    assert login.post("/login", {"name": "fu", "password": PASSWORD}, csrf=False).status == 403


def test_a_session_id_fixed_before_login_is_not_accepted_after_login(site):
    port, _store, _seeded, _console = site
    planted = "attacker-chosen-session-id-0123456789abcdef"
    victim = Client(port)
    victim.cookies[SESSION_COOKIE] = planted
    assert victim.login("fu").status == 303
    assert victim.cookies[SESSION_COOKIE] != planted
    assert victim.get("/queue").status == 200
    attacker = Client(port)
    attacker.cookies[SESSION_COOKIE] = planted
    assert attacker.get("/queue").status == 303  # to the login page
    assert logged_in(port, "fu").cookies[SESSION_COOKIE] != victim.cookies[SESSION_COOKIE]  # a new id per login


def test_logout_and_disabling_end_the_session(site):
    port, store, _seeded, console = site
    client = logged_in(port, "mgr")
    stolen = client.cookies[SESSION_COOKIE]
    assert client.post("/logout").status == 303
    thief = Client(port)
    thief.cookies[SESSION_COOKIE] = stolen
    assert thief.get("/queue").status == 303
    client = logged_in(port, "mgr2")
    with console.lock:
        Accounts(store, actor="cli:test").set_disabled("mgr2", True)
    assert client.get("/queue").status == 303
    assert client.login("mgr2").status == 401
    with console.lock:
        Accounts(store, actor="cli:test").set_disabled("mgr2", False)


def test_session_cookie_flags_and_security_headers(site):
    port, _store, _seeded, _console = site
    client = Client(port)
    client.get("/login")
    reply = client.post("/login", {"name": "sup", "password": PASSWORD})
    cookie = next(c for c in reply.headers.get_all("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = client.get("/audit")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"


def test_login_leads_only_to_this_site(site):
    port, _store, _seeded, _console = site
    client = Client(port)
    client.get("/login?next=//evil.example/x")
    reply = client.post("/login", {"name": "sup", "password": PASSWORD, "next": "//evil.example/x"})
    assert reply.status == 303 and reply.location == "/"


def test_brute_force_locks_the_account_and_is_audited(site):
    port, store, _seeded, console = site
    client = Client(port)
    for attempt in range(5):
        assert client.login("victim", f"wrong-password-{attempt}").status == 401
    locked = client.login("victim")  # the right password, but locked
    assert locked.status == 429 and 1 <= int(locked.headers["retry-after"]) <= 15 * 60 + 1
    assert "临时锁定" in locked.text
    with console.lock:
        actions = [e.action for e in store.audit_log() if e.target == "victim"]
    assert actions[:2] == ["login-locked", "login-failed"] and actions.count("login-failed") == 5


def test_an_address_over_its_login_budget_is_throttled(tmp_path):
    store, _seeded = seeded_store(tmp_path)
    settings = ConsoleSettings(login_limit_per_address="3/minute")
    with WebServer(build_app(store, settings, clock=lambda: CONSOLE_NOW), "127.0.0.1", 0) as server:
        client = Client(server.port)
        for name in ("mgr", "fu", "rev"):
            assert client.login(name, "wrong-password!").status == 401
        assert client.login("sup").status == 429  # another account, same address
    store.close()


def test_the_citizens_words_are_shown_escaped(site):
    port, _store, seeded, _console = site
    for user, path in (("fu", f"/followups/{seeded.followups['C1']}"), ("rev", f"/ratings/{seeded.ratings['C1']}"),
                       ("sup", f"/followups/{seeded.followups['C1']}"), ("mgr", "/queue?state=all")):
        page = logged_in(port, user).get(path).text
        assert "<script>alert" not in page and "<b>等候</b>" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;等候&lt;/b&gt;太久" in page


def test_the_contact_is_shown_to_the_followup_officer_only_after_an_audited_reveal(site):
    port, store, seeded, console = site
    client = logged_in(port, "fu")
    path = f"/followups/{seeded.followups['C1']}"
    assert CONTACT not in client.get(path).text
    assert CONTACT not in logged_in(port, "mgr").get(path).text and CONTACT not in logged_in(port, "sup").get(path).text
    reply = client.post(path + "/reveal")
    assert reply.status == 200 and CONTACT in reply.text
    with console.lock:
        [entry] = [e for e in store.audit_log() if e.action == "contact-reveal"][:1]
    assert (entry.actor, entry.target, entry.hall_id, entry.address) == ("fu", f"followup:{seeded.followups['C1']}",
                                                                          "hall01", "127.0.0.1")
    assert CONTACT not in entry.detail


def test_no_personal_data_in_the_consoles_logs(site, caplog):
    caplog.set_level(logging.DEBUG)
    port, store, seeded, console = site
    client = logged_in(port, "fu")
    fid = seeded.followups["C1"]
    client.get(f"/followups/{fid}")
    client.post(f"/followups/{fid}/reveal")
    client.post(f"/followups/{fid}/step", {"action": "contact", "note": f"已致电 {CONTACT}"})
    client.get("/lookup?q=C1")
    logged_in(port, "sup").get("/audit")
    Client(port).login("fu", "wrong-password!")
    text = caplog.text
    assert "console: fu logged in" in text  # the console does log, just nothing personal
    for secret in (CONTACT, "A-1", "等候", "script"):
        assert secret not in text, secret
    with console.lock:
        assert not [e for e in store.audit_log(limit=1000) if CONTACT in e.detail or "A-1" in e.detail]


def test_an_operator_pushes_settings_through_the_broker_once(tmp_path, broker):
    from hcp.config.schema import BrokerSection
    from hcp.protocol import SettingsMessage, Topics
    from hcp.sync.mqtt import LinkSettings, MqttLink

    store, _seeded = seeded_store(tmp_path)
    settings = ConsoleSettings(broker=BrokerSection(host=broker.host, port=broker.port))
    with WebServer(build_app(store, settings, clock=lambda: CONSOLE_NOW), "127.0.0.1", 0) as server:
        client = logged_in(server.port, "ops")
        client.get("/fleet")
        reply = client.post("/fleet/push", {"device": "hall01-w03", "version": "4", "volume": "0.5"})
        assert reply.status == 303 and reply.location == "/fleet?done=pushed"
        again = client.post("/fleet/push", {"device": "hall01-w03", "version": "4", "volume": "0.9"})
        assert again.status == 409 and "消息服务器上已保留同等或更新的设置版本" in again.text
    retained = []
    topic = Topics(settings.broker.prefix).config("hall01-w03")
    with MqttLink(LinkSettings(broker.host, broker.port, "op-read", clean_start=True), retained.append) as link:
        link.subscribe(topic)
        link.start()
        deadline = time.monotonic() + 10
        while not retained and time.monotonic() < deadline:
            time.sleep(0.05)
    message = SettingsMessage.model_validate_json(retained[0].payload)
    assert (message.version, message.volume) == (4, 0.5)
    assert [e.detail for e in store.audit_log() if e.action == "settings-push"] == ["设置版本 4"]
    store.close()


def test_the_queue_filters_by_hall_state_and_overdue(site):
    port, _store, seeded, _console = site
    client = logged_in(port, "sup")
    links = lambda page: {int(n) for n in re.findall(r'href="/followups/(\d+)"', page.text)}  # noqa: E731
    assert links(client.get("/queue?state=all")) == {seeded.followups[c] for c in ("C0", "C1", "C2", "C9")}
    assert links(client.get("/queue?hall=hall02&state=all")) == {seeded.followups["C9"]}
    assert links(client.get("/queue?overdue=1&state=all")) == {seeded.followups["C0"]}  # past its contact deadline
    assert seeded.followups["C0"] in links(client.get("/queue?state=open"))
    assert links(client.get("/queue?state=spot-checked")) == set()
    assert links(logged_in(port, "fu2").get("/queue")) == {seeded.followups["C9"]}  # only hall02's


def test_a_session_ends_after_console_session_hours(tmp_path):
    store, _seeded = seeded_store(tmp_path)
    now = [CONSOLE_NOW]
    settings = ConsoleSettings(session_hours=8)
    with WebServer(build_app(store, settings, clock=lambda: now[0]), "127.0.0.1", 0) as server:
        client = logged_in(server.port, "fu")
        now[0] += timedelta(hours=7, minutes=59)
        assert client.get("/queue").status == 200
        now[0] += timedelta(minutes=2)
        assert client.get("/queue").status == 303
    store.close()


def test_the_dashboard_and_statistics_carry_the_consoles_navigation(site):
    """The figures pages are the console's too: its navigation, the user and logging out, as on every page."""
    port = site[0]
    client = logged_in(port, "sup")
    for path in ("/halls/hall01", "/stats?hall=hall01"):
        page = client.get(path)
        assert page.status == 200, path
        assert 'href="/queue"' in page.text and 'href="/audit"' in page.text and 'action="/logout"' in page.text
        assert "sup（" in page.text

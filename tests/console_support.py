"""Shared pieces of the console tests: a store with a hall's 差评, accounts of every role, a real HTTP client."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from hcp.collector.channels import Channels, Entry
from hcp.collector.console.accounts import Accounts, parse_roles
from hcp.collector.console.app import ConsoleSettings, build_app
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.store import Store
from hcp.collector.web import WebServer
from hcp.domain import Channel
from hcp.protocol import StatusMessage
from tests.channel_support import NOW, case, open_store, window_rating

PASSWORD = "correct-horse-42"
#: Account -> its roles; "fu2"/"mgr2" work in hall02 only.
USERS = {"mgr": ["manager:hall01"], "fu": ["followup:hall01"], "rev": ["reviewer:hall01"], "sup": ["supervisor"],
         "ops": ["operator:hall01"], "fu2": ["followup:hall02"], "mgr2": ["manager:hall02"],
         "rev2": ["reviewer:hall02"], "ops2": ["operator:hall02"]}
#: The citizen's words on the phone 差评, with markup that must show as text.
HOSTILE = '<script>alert("x")</script><b>等候</b>太久'
CONTACT = "13800138000"
#: The console's clock: an hour after the ratings.
CONSOLE_NOW = NOW + timedelta(hours=1)
SETTINGS = ConsoleSettings(hall_names={"hall01": "鄂尔多斯市政务服务中心", "hall02": "东胜区政务服务中心"},
                           window_names={"hall01/w03": "3号窗口", "hall02/w01": "1号窗口"})


@dataclass
class Seeded:
    """What the seeded store holds, by name."""

    followups: dict[str, int] = field(default_factory=dict)  # case id -> follow-up id
    ratings: dict[str, str] = field(default_factory=dict)  # case id -> rating id


def seeded_store(tmp_path: Path) -> tuple[Store, Seeded]:
    """An Ordos store: hall01 with a phone 差评 (hostile text, a contact), a window 差评, a 好评 and an overdue
    差评; hall02 with one phone 差评; two terminals; an account of every role."""
    store = open_store(tmp_path, "ordos")
    old = NOW - timedelta(days=12)
    store.add_cases([case("C1"), case("C2"), case("C3"), case("C0", completed=old - timedelta(hours=1)),
                     case("C9", hall="hall02", window="w01")], NOW - timedelta(minutes=30))
    seeded = Seeded()
    channels = Channels(store)
    for case_id, text in (("C1", HOSTILE), ("C9", "态度差")):
        result = channels.enter(Entry(case_id, 1, Channel.QR, NOW, ("服务态度",), text), NOW)
        seeded.ratings[case_id] = result.rating_id
    for case_id, score, at in (("C2", 2, NOW), ("C3", 5, NOW), ("C0", 1, old)):
        window_rating(store, case_id, score, at=at)
        seeded.ratings[case_id] = store.ratings_of_case(case_id, None)[0]
    for followup in store.followups():
        case_id = next(c for c, r in seeded.ratings.items() if r == followup.rating_id)
        seeded.followups[case_id] = followup.id
    Lifecycle(store).set_contact(seeded.followups["C1"], CONTACT)
    store.register_device("hall02-w01", "hall02", "w01")
    store.register_device("hall01-w04", "hall01", "w04")  # never seen
    store.record_status("hall01-w03", StatusMessage(v=1, device_id="hall01-w03", state="online", version="0.1.0",
                                                    outbox_depth=0, clock_synced=True, settings_version=3),
                        CONSOLE_NOW - timedelta(seconds=30))
    accounts = Accounts(store, clock=lambda: NOW, actor="cli:test")
    for name, roles in USERS.items():
        accounts.add(name, PASSWORD, parse_roles(roles))
    return store, seeded


def serve(store: Store, settings: ConsoleSettings = SETTINGS, clock=lambda: CONSOLE_NOW) -> WebServer:
    """The console over ``store`` on a free port (started; close it)."""
    server = WebServer(build_app(store, settings, clock=clock), "127.0.0.1", 0)
    server.start()
    return server


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


class Client:
    """A browser-less HTTP client over real sockets: keeps cookies, remembers the last page's CSRF token."""

    def __init__(self, port: int, address: str = "127.0.0.1") -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.headers: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            conn.close()
        for raw in response.headers.get_all("set-cookie") or []:
            for name, morsel in SimpleCookie(raw).items():
                if morsel["max-age"] == "0" or not morsel.value or "1970" in morsel["expires"]:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        found = _CSRF.search(text)
        if found:
            self.csrf = found.group(1)
        return Reply(response.status, response.headers, text)

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: dict | None = None, *, csrf: bool = True) -> Reply:
        data = dict(form or {})
        if csrf:
            data.setdefault("csrf", self.csrf)
        return self.request("POST", path, data)

    def login(self, name: str, password: str = PASSWORD) -> Reply:
        self.get("/login")
        return self.post("/login", {"name": name, "password": password})


def logged_in(port: int, name: str) -> Client:
    client = Client(port)
    reply = client.login(name)
    assert reply.status == 303, (name, reply.status, reply.text[:300])
    client.get("/")  # the session's CSRF token
    return client


def at(moment: datetime) -> str:
    return moment.isoformat()

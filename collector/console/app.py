"""The console's Starlette app: :func:`build_app` over one store, :func:`serve` for ``hcp console``.

Server-rendered HTML (Jinja2, autoescaped) in Chinese, times in China
Standard Time. The app writes through its own store connection; a lock keeps
that connection to one request at a time (as the phone page does). Pages and
actions are in :mod:`.views`; who may do what is checked there with
:func:`.auth.require`, per hall.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from hcp.collector.console.audit import Audit
from hcp.collector.console.auth import (
    ROLE_NAMES,
    LoginGuard,
    User,
    current_user,
    hash_password,
    id_hash,
    needs_rehash,
    new_token,
    password_matches,
)
from hcp.collector.console.exc import LoginRefused
from hcp.collector.console.middleware import SessionMiddleware
from hcp.collector.fleet import Thresholds
from hcp.collector.lifecycle import Lifecycle
from hcp.collector.store import Store
from hcp.collector.web import BodyLimit
from hcp.domain import CST, Level, now_cst, utc_text

log = logging.getLogger("hcp.collector.console")
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ConsoleSettings:
    """What the console needs besides the store (the collector config's [console], [web] and [fleet] keys)."""

    hall_names: dict[str, str] = field(default_factory=dict)
    window_names: dict[str, str] = field(default_factory=dict)
    session_hours: float = 8.0
    secure_cookie: bool = False
    login_limit_per_address: str = "20/minute"
    login_failures_per_account: str = "5/15 minutes"
    max_body_bytes: int = 64 * 1024
    fleet: Thresholds = field(default_factory=Thresholds)
    broker: Any = None  # hcp.config.schema.BrokerSection: for pushing settings; None: no pushing


class Console:
    """The console's state over one store: sessions, the audit log, the lifecycle, templates."""

    def __init__(self, store: Store, settings: ConsoleSettings = ConsoleSettings(),
                 clock: Callable[[], datetime] = now_cst) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.lock = threading.RLock()
        self.lifecycle = Lifecycle(store)
        self.audit = Audit(store, clock)
        self.guard = LoginGuard(settings.login_limit_per_address, settings.login_failures_per_account)
        self.templates = _environment()

    # -- sessions -------------------------------------------------------------------

    def user_for_session(self, session_id: str) -> User | None:
        """The user of a live session, or None (unknown, expired, or its account disabled)."""
        with self.lock:
            found = self.store.session(id_hash(session_id), utc_text(self.clock()))
            if found is None:
                return None
            account = self.store.account(found[0])
        return None if account is None else User.from_pairs(account.name, account.roles, found[1])

    def login(self, name: str, password: str, address: str) -> tuple[str, User]:
        """A new session (id, user) for a good name and password; LoginRefused otherwise (counted, audited)."""
        name = name.strip()[:64]
        with self.lock:
            try:
                self.guard.check(address, name)
            except LoginRefused:
                self.audit.record(name or "?", "login-locked", name, address=address)
                raise
            account = self.store.account(name) if name else None
            good = password_matches(account.password_hash if account else None, password)
            if not good or account is None or account.disabled:
                self.guard.failed(address, name)
                self.audit.record(name or "?", "login-failed", name, address=address,
                                  detail="disabled" if good and account and account.disabled else "")
                raise LoginRefused("账号或密码错误，或账号已停用。")
            return self._open_session(account, password, address)

    def _open_session(self, account, password: str, address: str) -> tuple[str, User]:
        now = self.clock()
        session_id, csrf = new_token(), new_token()
        with self.store.unit():
            if needs_rehash(account.password_hash):
                self.store.set_password_hash(account.name, hash_password(password), utc_text(now))
            expires = now + timedelta(hours=self.settings.session_hours)
            self.store.add_session(id_hash(session_id), account.name, csrf, utc_text(now), utc_text(expires))
            self.audit.record(account.name, "login", account.name, address=address)
        log.info("console: %s logged in", account.name)
        return session_id, User.from_pairs(account.name, account.roles, csrf)

    def logout(self, session_id: str, user: User | None, address: str) -> None:
        with self.lock, self.store.unit():
            self.store.end_session(id_hash(session_id))
            if user is not None:
                self.audit.record(user.name, "logout", user.name, address=address)

    # -- names --------------------------------------------------------------------------

    def hall_name(self, hall_id: str) -> str:
        return self.settings.hall_names.get(hall_id, hall_id)

    def window_name(self, hall_id: str, window_id: str) -> str:
        return self.settings.window_names.get(f"{hall_id}/{window_id}", f"{window_id} 窗口")

    def halls(self) -> list[str]:
        """Every hall the store knows (terminals and follow-ups) and the config names, sorted."""
        with self.lock:
            known = {d.hall_id for d in self.store.devices()} | set(self.settings.hall_names)
        return sorted(known)

    # -- pages ----------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A page from ``template`` with the user, navigation and a fresh CSP nonce."""
        nonce = secrets.token_urlsafe(12)
        user = current_user(request)
        body = self.templates.get_template(template).render(
            request=request, user=user, nav=navigation(user, request.url.path), nonce=nonce,
            role_labels=_role_labels(user), console=self, **context)
        return HTMLResponse(body, status_code=status, headers=security_headers(nonce))


def navigation(user: User | None, path: str) -> list[dict[str, Any]]:
    """The links the user's roles open, the current one marked."""
    if user is None:
        return []
    links = [("/queue", "差评工作台", ("manager", "followup", "supervisor")),
             ("/appeals", "申诉与剔除", ("manager", "reviewer", "supervisor")),
             ("/lookup", "评价查询", ("manager", "followup", "reviewer", "supervisor")),
             ("/fleet", "终端运维", ("operator", "supervisor")),
             ("/audit", "审计日志", ("supervisor",))]
    links += _figures_nav()
    return [{"href": href, "label": label, "current": path == href or path.startswith(href + "/")}
            for href, label, roles in links if user.can(roles)]


def _figures_nav() -> list[tuple[str, str, tuple[str, ...]]]:
    try:
        from hcp.collector.console.figures import NAV  # type: ignore[attr-defined]
    except ImportError:
        return []
    return list(NAV)


def _role_labels(user: User | None) -> str:
    if user is None:
        return ""
    return "、".join(ROLE_NAMES[role] for role in ROLE_NAMES if role in user.roles)


def security_headers(nonce: str) -> dict[str, str]:
    """CSP with a per-response nonce (inline style and script only with it), no framing, no caching."""
    return {
        "Content-Security-Policy": f"default-src 'self'; style-src 'self' 'nonce-{nonce}'; "
                                   f"script-src 'self' 'nonce-{nonce}'; img-src 'self' data:; form-action 'self'; "
                                   "base-uri 'none'; frame-ancestors 'none'",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


# -- templates ---------------------------------------------------------------------------

def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["cst"] = china_time
    env.filters["stars"] = stars
    env.filters["level"] = level_label
    env.globals["ROLE_NAMES"] = ROLE_NAMES
    return env


def china_time(text: str | None, with_seconds: bool = False) -> str:
    """A stored UTC time as China Standard Time, '2026-03-10 10:00'; '—' for none."""
    if not text:
        return "—"
    try:
        moment = datetime.fromisoformat(text).astimezone(CST)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def stars(score: int | None) -> str:
    return "" if score is None else "★" * int(score) + "☆" * (5 - int(score))


def level_label(score: int | None) -> str:
    try:
        return Level(int(score)).label if score is not None else ""
    except ValueError:
        return str(score)


# -- the app -----------------------------------------------------------------------------

def build_app(store: Store, settings: ConsoleSettings = ConsoleSettings(),
              clock: Callable[[], datetime] = now_cst) -> Starlette:
    """The console's ASGI app over ``store`` (its own connection, opened with check_same_thread=False)."""
    from hcp.collector.console import views

    console = Console(store, settings, clock)

    async def refuse(request: Request, text: str) -> HTMLResponse:
        return console.render(request, "error.html", 403, title="操作被拒绝", message=text)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (301, 302, 303, 307):
            return Response(status_code=exc.status_code, headers=exc.headers)
        titles = {403: "无权访问", 404: "未找到", 405: "不支持的请求"}
        return console.render(request, "error.html", exc.status_code, title=titles.get(exc.status_code, "出错了"),
                              message=exc.detail if exc.status_code != 405 else "不支持的请求方式。")

    routes: list[BaseRoute] = views.routes(console) + figures_routes()
    middleware = [Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
                  Middleware(SessionMiddleware, lookup=console.user_for_session, refuse=refuse)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error})
    app.state.console = console
    return app


def figures_routes() -> list[BaseRoute]:
    """The dashboard, statistics and export pages (collector.console.figures_routes), when present."""
    try:
        from hcp.collector.console import figures_routes as make  # type: ignore[attr-defined]
    except ImportError:
        try:
            from hcp.collector.console.figures import figures_routes as make  # type: ignore[no-redef]
        except ImportError:
            return []
    return list(make())


def serve(config, stop: threading.Event | None = None) -> None:
    """Run the console for a collector config until ``stop`` is set (or forever); ``hcp console``."""
    from hcp.collector.opening import open_store
    from hcp.collector.web import ServerLimits, WebServer

    console_config = config.console
    settings = ConsoleSettings(
        hall_names=dict(config.web.hall_names), window_names=dict(config.web.window_names),
        session_hours=console_config.session_hours, secure_cookie=console_config.secure_cookie,
        login_limit_per_address=console_config.login_limit_per_address,
        login_failures_per_account=console_config.login_failures_per_account,
        fleet=Thresholds(config.fleet.offline_alert_s, config.fleet.outbox_alert_depth,
                         config.fleet.outbox_alert_age_s, config.fleet.stale_after_s),
        broker=config.broker)
    host, _sep, port = console_config.listen.rpartition(":")
    with open_store(config, check_same_thread=False) as store:
        app = build_app(store, settings)
        with WebServer(app, host, int(port), console_config.trusted_proxies, ServerLimits()) as server:
            log.info("console listening on http://%s:%s/", host, server.port)
            (stop or threading.Event()).wait()
